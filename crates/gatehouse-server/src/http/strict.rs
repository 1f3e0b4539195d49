//! Every body is read once, as written: [`read_object`] refuses a body that is not a JSON
//! object, and any object key written twice ([`crate::json_keys`]; the entities of its
//! entity lists are checked where they are parsed, once per distinct entity text).

use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};
use crate::json_keys::{Skip, duplicate_key};

/// Reads `text` (the whole body, or one item of it, named by `what`) into `T`, refusing
/// anything but a JSON object (serde reads a struct from a positional array too, which no
/// client means) and any key written twice. Every body of the API is read through it.
pub fn read_object<T: DeserializeOwned>(text: &[u8], what: &str) -> Result<T, ApiError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Valid JSON of another kind is the wrong shape; anything else is malformed.
        // A tree, not `IgnoredAny`, whose skipping knows no depth limit.
        return Err(match serde_json::from_slice::<serde_json::Value>(text) {
            Ok(_) => ApiError::new(
                ErrorCode::InvalidRequest,
                format!("{what} must be a JSON object"),
            ),
            Err(e) => ApiError::from_json(&e),
        });
    }
    serde_json::from_slice(text).map_err(|e| refused(text, &e))
}

/// The error of a body the parse refused: a key written twice, with its path, when that is
/// why (serde's structs refuse a field written twice, [`crate::json_keys::strict_value`] a
/// key inside a value), else what the parse says.
pub fn refused(text: &[u8], error: &serde_json::Error) -> ApiError {
    if error.is_data()
        && let Some(path) = duplicate_key(text, Skip::EntityLists)
    {
        return ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`{path}` is written twice: a key may appear only once in an object"),
        )
        .with_field(path);
    }
    ApiError::from_json(error)
}
