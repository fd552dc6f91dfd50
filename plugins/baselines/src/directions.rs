//! The `directions` port type: one unit normal per class of a label schema, with decision offsets.
//!
//! A [`Bundle`] of kind [`port::DIRECTIONS`] holding `normals` (K x D, unit rows, schema order) and `offsets` (K;
//! the signed distance of a code is `normal . z + offset`), with meta
//! `{"format": "subspace.fit/1", "kind": "directions", "method": ..., "classes": [...], "schema": {...}, ...}`.

use subspace_sdk::abi_stable::std_types::{RString, RVec};
use subspace_sdk::tch::{Device, Kind, Tensor};
use subspace_sdk::{port, Bundle, LabelGroup, LabelSchema, NodeError, NodeResult};

pub const FORMAT: &str = "subspace.fit/1";

/// Linear directions in latent space, one per class.
pub struct Directions {
    /// K x D, float32, unit rows.
    pub normals: Tensor,
    /// K, float32.
    pub offsets: Tensor,
    pub schema: LabelSchema,
    /// `interfacegan`, `ganspace`, `sefa` or `imported`.
    pub method: String,
    /// Method details (accuracies, matched components, ...), merged into the bundle's meta.
    pub details: serde_json::Value,
}

impl Directions {
    /// Builds directions from `normals` (K x D, renormalised here) and `offsets` (K). Errors when a normal is zero
    /// or not finite, or when K differs from the schema's class count.
    pub fn new(normals: &Tensor, offsets: &Tensor, schema: LabelSchema, method: &str, details: serde_json::Value) -> Result<Self, String> {
        let k = schema.len() as i64;
        if normals.dim() != 2 || normals.size()[0] != k {
            return Err(format!("{} normals of shape {:?} for a schema of {k} classes", method, normals.size()));
        }
        if offsets.size() != vec![k] {
            return Err(format!("offsets of shape {:?} for {k} classes", offsets.size()));
        }
        let n = normals.to_kind(Kind::Double);
        let norms = n.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
        let bad = norms.le(1e-12).logical_or(&norms.isfinite().logical_not()).squeeze_dim(1);
        if bad.any().int64_value(&[]) != 0 {
            let i = bad.to_kind(Kind::Int64).argmax(0, false).int64_value(&[]);
            return Err(format!("the normal of {} is zero or not finite", schema.class_names()[i as usize]));
        }
        Ok(Directions {
            normals: (n / norms).to_kind(Kind::Float),
            offsets: offsets.to_kind(Kind::Float),
            schema,
            method: method.to_string(),
            details,
        })
    }

    pub fn k(&self) -> i64 {
        self.normals.size()[0]
    }
    pub fn dim(&self) -> i64 {
        self.normals.size()[1]
    }

    pub fn meta(&self) -> serde_json::Value {
        let mut meta = serde_json::json!({
            "format": FORMAT,
            "kind": port::DIRECTIONS,
            "method": self.method,
            "classes": self.schema.class_names(),
            "schema": serde_json::to_value(&self.schema).unwrap_or_default(),
            "dim": self.dim(),
        });
        if let serde_json::Value::Object(extra) = &self.details {
            for (key, value) in extra {
                if meta.get(key).is_none() {
                    meta[key] = value.clone();
                }
            }
        }
        meta
    }

    pub fn to_bundle(&self) -> Bundle {
        Bundle::new(port::DIRECTIONS, &self.meta())
            .with("normals", self.normals.shallow_clone())
            .with("offsets", self.offsets.shallow_clone())
    }

    /// Reads and checks a directions bundle arriving on input `port_name`.
    pub fn from_bundle(b: &Bundle, port_name: &str) -> NodeResult<Directions> {
        let err = |m: String| NodeError::input(port_name, m);
        if b.kind.as_str() != port::DIRECTIONS {
            return Err(err(format!("expected a {} bundle, got {}", port::DIRECTIONS, b.kind)));
        }
        let meta = b.meta_json();
        let schema: LabelSchema = serde_json::from_value(meta["schema"].clone())
            .map_err(|e| err(format!("directions meta has no valid schema: {e}")))?;
        let normals = b.get("normals").ok_or_else(|| err("directions bundle has no 'normals' tensor".into()))?;
        let offsets = match b.get("offsets") {
            Some(o) => o,
            None => Tensor::zeros([normals.size()[0]], (Kind::Float, normals.device())),
        };
        let method = meta["method"].as_str().unwrap_or("unknown").to_string();
        Directions::new(&normals, &offsets.to_device(normals.device()), schema, &method, meta).map_err(err)
    }

    pub fn to_device(&self, device: Device) -> Directions {
        Directions {
            normals: self.normals.to_device(device),
            offsets: self.offsets.to_device(device),
            schema: self.schema.clone(),
            method: self.method.clone(),
            details: self.details.clone(),
        }
    }
}

/// A schema from `group.class` names: one group per distinct group prefix, in order of first appearance.
pub fn schema_from_names(names: &[String]) -> Result<LabelSchema, String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        let Some((g, c)) = name.rsplit_once('.') else {
            return Err(format!("class '{name}' is not of the form group.class"));
        };
        if g.is_empty() || c.is_empty() {
            return Err(format!("class '{name}' is not of the form group.class"));
        }
        match groups.iter_mut().find(|(n, _)| n == g) {
            Some((_, classes)) if classes.iter().any(|x| x == c) => return Err(format!("class '{name}' is named twice")),
            Some((_, classes)) => classes.push(c.to_string()),
            None => groups.push((g.to_string(), vec![c.to_string()])),
        }
    }
    Ok(make_schema(groups))
}

pub fn make_schema(groups: Vec<(String, Vec<String>)>) -> LabelSchema {
    LabelSchema {
        groups: groups
            .into_iter()
            .map(|(name, classes)| LabelGroup { name: RString::from(name), classes: classes.into_iter().map(RString::from).collect::<RVec<_>>() })
            .collect(),
    }
}

/// The part of `schema` holding only `keep` (full `group.class` names), in the schema's order; groups left
/// empty are dropped.
pub fn restrict_schema(schema: &LabelSchema, keep: &[String]) -> LabelSchema {
    let groups = schema
        .groups
        .iter()
        .filter_map(|g| {
            let classes: Vec<String> =
                g.classes.iter().filter(|c| keep.iter().any(|k| *k == format!("{}.{}", g.name, c))).map(|c| c.to_string()).collect();
            if classes.is_empty() { None } else { Some((g.name.to_string(), classes)) }
        })
        .collect();
    make_schema(groups)
}

/// Parses an edit target list against `schema`: `all` (every class on its own), or comma-separated edits where
/// each edit is one class or several joined by `+` (edited together), e.g. `hair.red,smile.yes+glasses.yes`.
/// Returns each edit's canonical name (`group.class` joined by `+`) and its columns.
pub fn parse_targets(spec: &str, schema: &LabelSchema) -> NodeResult<Vec<(String, Vec<usize>)>> {
    let names = schema.class_names();
    if spec.trim() == "all" {
        return Ok(names.iter().enumerate().map(|(i, n)| (n.clone(), vec![i])).collect());
    }
    let cols = schema.columns();
    let mut out = Vec::new();
    for edit in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let mut set = Vec::new();
        let mut groups = Vec::new();
        for name in edit.split('+').map(str::trim) {
            let c = schema
                .column(name)
                .ok_or_else(|| NodeError::param("target", format!("unknown class '{name}'; the directions have {names:?}")))?;
            let group = cols[c].0;
            if groups.contains(&group) {
                return Err(NodeError::param("target", format!("'{edit}' names two classes of group '{}'", schema.groups[group].name)));
            }
            groups.push(group);
            set.push(c);
        }
        let canonical = set.iter().map(|&c| names[c].clone()).collect::<Vec<_>>().join("+");
        out.push((canonical, set));
    }
    if out.is_empty() {
        return Err(NodeError::param("target", "no target class given"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> LabelSchema {
        make_schema(vec![
            ("hair".into(), vec!["black".into(), "red".into()]),
            ("smile".into(), vec!["yes".into(), "no".into()]),
            ("glasses".into(), vec!["yes".into()]),
        ])
    }

    #[test]
    fn targets_parse_like_attribute_edit() {
        let s = schema();
        let t = parse_targets("all", &s).unwrap();
        assert_eq!(t.len(), 5);
        let t = parse_targets("red, smile.yes+glasses.yes", &s).unwrap();
        assert_eq!(t, vec![("hair.red".to_string(), vec![1]), ("smile.yes+glasses.yes".to_string(), vec![2, 4])]);
        let e = parse_targets("hair.blond", &s).unwrap_err();
        assert!(e.message.contains("unknown class 'hair.blond'") && e.message.contains("hair.red"), "{}", e.message);
        assert!(parse_targets("hair.black+hair.red", &s).is_err());
        // A bare name shared by two groups is ambiguous.
        assert!(parse_targets("yes", &s).is_err());
    }

    #[test]
    fn bundle_round_trip_and_checks() {
        let s = schema();
        let n = Tensor::randn([5, 7], (Kind::Float, Device::Cpu)) * 3.0;
        let d = Directions::new(&n, &Tensor::zeros([5], (Kind::Float, Device::Cpu)), s.clone(), "ganspace", serde_json::json!({"components": 4})).unwrap();
        let b = d.to_bundle();
        let back = Directions::from_bundle(&b, "directions").unwrap();
        assert_eq!(back.schema, s);
        assert_eq!(back.method, "ganspace");
        assert_eq!(b.meta_json()["components"], 4);
        assert_eq!(b.meta_json()["classes"][4], "glasses.yes");
        let norms = back.normals.norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-6);
        assert!(Directions::new(&n.narrow(0, 0, 4), &Tensor::zeros([4], (Kind::Float, Device::Cpu)), s.clone(), "x", serde_json::json!({})).is_err());
        let z = n.copy();
        let _ = z.get(2).fill_(0.0);
        let e = Directions::new(&z, &Tensor::zeros([5], (Kind::Float, Device::Cpu)), s, "x", serde_json::json!({})).err().unwrap();
        assert!(e.contains("smile.yes"), "{e}");
    }

    #[test]
    fn schemas_from_names_and_restriction() {
        let s = schema_from_names(&["hair.red".into(), "smile.yes".into(), "hair.black".into()]).unwrap();
        assert_eq!(s.class_names(), vec!["hair.red", "hair.black", "smile.yes"]);
        assert!(schema_from_names(&["red".into()]).is_err());
        let r = restrict_schema(&schema(), &["glasses.yes".into(), "hair.red".into()]);
        assert_eq!(r.class_names(), vec!["hair.red", "glasses.yes"]);
    }
}
