//! Fitting on labels that cannot hold a class: the fit says so before it works, naming the class, its label mass,
//! and whether more codes would help.

use serde_json::json;
use subspace_host::NodeStatus;
use subspace_sdk::ErrorKind;
use subspace_tests::*;

#[test]
fn a_class_the_classifier_never_predicts_is_named_with_its_label_mass_before_the_fit_works() {
    let dir = tempfile::tempdir().unwrap();
    let gen = toy::generator(dir.path()).display().to_string();
    let clf = toy::never_blue_classifier(dir.path()).display().to_string();
    // 5,000 steps would take a while: the refusal comes first, so the run is short whatever `steps` says.
    let g = toy_fit(&gen, &clf, 400, json!({"steps": 5000, "rank": 1}), json!({"steps": 1, "samples": 0})).out("gmm");
    let r = run_at(&evaluator(product_registry()), dir.path(), &g);
    let Some(NodeStatus::Failed { error }) = r.status.get("gauss") else { panic!("{:#?}", r.status) };
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert_eq!(error.location.as_ref().map(|l| l.as_str()).into_option(), Some("labels"));
    let m = error.message.as_str();
    assert!(m.contains("never predicts blue.yes (label mass 0.000, most likely class of 0 codes)"), "{m}");
    assert!(m.contains("more codes will not help") && m.contains("check the classifier"), "{m}");
    // Held-out and validation codes are not fitted: 400 codes, 20% held out, 5% of the rest for stopping.
    assert!(m.contains("the 304 codes fitted (of 400)"), "{m}");
    assert!(!m.contains("red.") && !m.contains("sample about"), "{m}");
    assert!(matches!(r.status.get("gmm"), Some(NodeStatus::Skipped { .. })), "{:#?}", r.status);
}
