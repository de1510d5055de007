//! Catalogue search: every word of the query must appear (case-insensitive) in
//! an API's or product's name, description, path or operation names.

use portcullis_core::config::{Api, Product};

/// The most words a query is split into; more are ignored.
const MAX_WORDS: usize = 10;

/// A parsed search query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    words: Vec<String>,
}

impl Query {
    /// Splits `q` into lower-case words.
    pub fn parse(q: &str) -> Query {
        Query {
            words: q
                .split_whitespace()
                .take(MAX_WORDS)
                .map(str::to_lowercase)
                .collect(),
        }
    }

    /// Whether there is nothing to search for (everything matches).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether every word occurs in one of `fields`.
    fn matches_fields(&self, fields: &[&str]) -> bool {
        let lowered: Vec<String> = fields.iter().map(|f| f.to_lowercase()).collect();
        self.words
            .iter()
            .all(|w| lowered.iter().any(|f| f.contains(w.as_str())))
    }

    /// Whether `api` matches: id, name, description, path, operations' ids, names,
    /// descriptions, methods and URL templates.
    pub fn matches_api(&self, api: &Api) -> bool {
        if self.is_empty() {
            return true;
        }
        let mut fields: Vec<&str> = vec![&api.id, &api.display_name, &api.description, &api.path];
        for op in &api.operations {
            fields.extend([
                op.id.as_str(),
                op.display_name.as_str(),
                op.description.as_str(),
                op.method.as_str(),
                op.url_template.as_str(),
            ]);
        }
        self.matches_fields(&fields)
    }

    /// Whether `product` matches: its id, name and description, or one of its APIs'
    /// names (`api_names`).
    pub fn matches_product(&self, product: &Product, api_names: &[&str]) -> bool {
        if self.is_empty() {
            return true;
        }
        let mut fields: Vec<&str> = vec![&product.id, &product.display_name, &product.description];
        fields.extend_from_slice(api_names);
        self.matches_fields(&fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pets() -> Api {
        serde_json::from_value(serde_json::json!({
            "id": "pets",
            "displayName": "Pet Store",
            "description": "Cats and dogs",
            "path": "store/pets",
            "serviceUrl": "http://127.0.0.1:1",
            "operations": [
                {"id": "listPets", "displayName": "List all pets", "method": "GET", "urlTemplate": "/pets"},
                {"id": "adopt", "method": "POST", "urlTemplate": "/pets/{petId}/adoption"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn every_word_must_match_somewhere() {
        let api = pets();
        for q in [
            "",
            "pet",
            "PET store",
            "cats",
            "store/pets",
            "list all",
            "adoption",
            "adopt dogs",
            "post",
        ] {
            assert!(Query::parse(q).matches_api(&api), "{q}");
        }
        for q in ["weather", "pets weather", "put"] {
            assert!(!Query::parse(q).matches_api(&api), "{q}");
        }
    }

    #[test]
    fn products_match_their_apis_names() {
        let product: Product = serde_json::from_value(serde_json::json!({
            "id": "starter", "displayName": "Starter", "description": "Free tier", "apis": ["pets"]
        }))
        .unwrap();
        assert!(Query::parse("free").matches_product(&product, &[]));
        assert!(Query::parse("pet store").matches_product(&product, &["Pet Store"]));
        assert!(!Query::parse("gold").matches_product(&product, &["Pet Store"]));
    }
}
