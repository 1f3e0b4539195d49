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
    serde_json::from_slice(text).map_err(|e| refused::<T>(text, &e))
}

/// The error of a body the parse refused: a key written twice, with its path, when that is
/// why (serde's structs refuse a field written twice, [`crate::json_keys::strict_value`] a
/// key inside a value); a question's uid of the wrong shape, as its reader worded it, with
/// the code of its field (`uid_refused`); else what the parse says.
pub fn refused<T: DeserializeOwned>(text: &[u8], error: &serde_json::Error) -> ApiError {
    if error.is_data() {
        if let Some(path) = duplicate_key(text, Skip::EntityLists) {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`{path}` is written twice: a key may appear only once in an object"),
            )
            .with_field(path);
        }
        if let Some(refused) = uid_refused::<T>(text) {
            return refused;
        }
    }
    ApiError::from_json(error)
}

/// A question's `principal`, `action`, `resource` or `actions[i]` that is not a uid
/// ([`gatehouse_api::Uid::principal`] and its siblings refuse it as it is read, naming the
/// field): the body read again with its path kept, so that the field at fault gives the
/// code (`invalid_principal`, …) and the `field`, and the message is the reader's, without
/// serde's position. Only on a refusal: the way in pays nothing for it.
fn uid_refused<T: DeserializeOwned>(text: &[u8]) -> Option<ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let error = serde_path_to_error::deserialize::<_, T>(&mut deserializer).err()?;
    let field = error.path().to_string();
    let code = match field.as_str() {
        "principal" => ErrorCode::InvalidPrincipal,
        "action" => ErrorCode::InvalidAction,
        "resource" => ErrorCode::InvalidResource,
        actions if actions.starts_with("actions[") && !actions.contains('.') => {
            ErrorCode::InvalidAction
        }
        _ => return None,
    };
    let error = error.into_inner();
    let message = error.to_string();
    let at = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&at).unwrap_or(&message).to_string();
    Some(ApiError::new(code, message).with_field(field))
}
