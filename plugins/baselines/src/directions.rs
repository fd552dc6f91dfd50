//! The `directions` port type, typed: one unit normal per class of a label schema, with decision offsets.
//!
//! On a link it is the SDK's [`kinds::Directions`] bundle holding `normals` (K x D, unit rows, schema order) and
//! `offsets` (K; the signed distance of a code is `normal . z + offset`), with meta
//! `{"format": "subspace.fit/1", "kind": "directions", "method": ..., "classes": [...], "schema": {...}, ...}`.

use subspace_sdk::abi_stable::std_types::{RString, RVec};
use subspace_sdk::declare::PortValue;
use subspace_sdk::tch::{Device, Kind, Tensor};
use subspace_sdk::{kinds, port, Bundle, LabelGroup, LabelSchema, NodeError, NodeResult, Value};

/// The `format` field of the bundle's meta.
pub const FORMAT: &str = "subspace.fit/1";

/// Linear directions in latent space, one per class: the typed view of a [`kinds::Directions`] bundle, checked
/// when read from a port.
pub struct Directions {
    /// K x D, float32, unit rows.
    pub normals: Tensor,
    /// K, float32.
    pub offsets: Tensor,
    /// The classes, one per row, in order.
    pub schema: LabelSchema,
    /// `interfacegan`, `ganspace`, `sefa` or `imported`.
    pub method: String,
    /// Method details (accuracies, matched components, ...), merged into the bundle's meta.
    pub details: serde_json::Value,
}

impl Directions {
    /// Builds directions from `normals` (K x D, renormalised here) and `offsets` (K). Errors when a normal is zero
    /// or not finite, or when K differs from the schema's class count.
    pub fn new(
        normals: &Tensor,
        offsets: &Tensor,
        schema: LabelSchema,
        method: &str,
        details: serde_json::Value,
    ) -> Result<Self, String> {
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

    /// The latent dimension D.
    pub fn dim(&self) -> i64 {
        self.normals.size()[1]
    }

    /// The bundle's meta: format, kind, method, classes, schema and dimension, then the details not named yet.
    fn meta(&self) -> serde_json::Value {
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

    fn to_bundle(&self) -> Bundle {
        Bundle::new(port::DIRECTIONS, &self.meta())
            .with("normals", self.normals.shallow_clone())
            .with("offsets", self.offsets.shallow_clone())
    }

    /// Reads and checks a directions bundle arriving on input `port_name` (missing offsets read as 0).
    fn from_bundle(b: &Bundle, port_name: &str) -> NodeResult<Directions> {
        let err = |m: String| NodeError::input(port_name, m);
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

    /// The same directions with their tensors on `device`.
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

impl PortValue for Directions {
    fn port_type() -> String {
        port::DIRECTIONS.into()
    }
    fn from_value(name: &str, value: &Value) -> NodeResult<Self> {
        Directions::from_bundle(&kinds::Directions::from_value(name, value)?.0, name)
    }
    fn into_value(self) -> Value {
        kinds::Directions(self.to_bundle()).into_value()
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
            Some((_, classes)) if classes.iter().any(|x| x == c) => {
                return Err(format!("class '{name}' is named twice"))
            }
            Some((_, classes)) => classes.push(c.to_string()),
            None => groups.push((g.to_string(), vec![c.to_string()])),
        }
    }
    Ok(make_schema(groups))
}

/// A schema from `(group, classes)` pairs, in their order.
pub fn make_schema(groups: Vec<(String, Vec<String>)>) -> LabelSchema {
    LabelSchema {
        groups: groups
            .into_iter()
            .map(|(name, classes)| LabelGroup {
                name: RString::from(name),
                classes: classes.into_iter().map(RString::from).collect::<RVec<_>>(),
            })
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
            let classes: Vec<String> = g
                .classes
                .iter()
                .filter(|c| keep.iter().any(|k| *k == format!("{}.{}", g.name, c)))
                .map(|c| c.to_string())
                .collect();
            if classes.is_empty() {
                None
            } else {
                Some((g.name.to_string(), classes))
            }
        })
        .collect();
    make_schema(groups)
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
    fn bundle_round_trip_and_checks() {
        let s = schema();
        let n = Tensor::randn([5, 7], (Kind::Float, Device::Cpu)) * 3.0;
        let d = Directions::new(
            &n,
            &Tensor::zeros([5], (Kind::Float, Device::Cpu)),
            s.clone(),
            "ganspace",
            serde_json::json!({"components": 4}),
        )
        .unwrap();
        let v = d.into_value();
        let Value::Bundle(b) = &v else { panic!("not a bundle: {v:?}") };
        let back = Directions::from_value("directions", &v).unwrap();
        assert_eq!(back.schema, s);
        assert_eq!(back.method, "ganspace");
        assert_eq!(b.meta_json()["components"], 4);
        assert_eq!(b.meta_json()["classes"][4], "glasses.yes");
        let norms = back.normals.norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-6);
        let e = Directions::from_value("dirs", &Value::Text("{}".into())).err().unwrap();
        assert!(e.message.contains("expected directions, got text"), "{}", e.message);
        assert!(Directions::new(
            &n.narrow(0, 0, 4),
            &Tensor::zeros([4], (Kind::Float, Device::Cpu)),
            s.clone(),
            "x",
            serde_json::json!({})
        )
        .is_err());
        let z = n.copy();
        let _ = z.get(2).fill_(0.0);
        let e = Directions::new(&z, &Tensor::zeros([5], (Kind::Float, Device::Cpu)), s, "x", serde_json::json!({}))
            .err()
            .unwrap();
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
