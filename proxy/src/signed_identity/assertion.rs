//! The assertion's text, as ALB writes `x-amzn-oidc-data`: a JWT whose three parts are base64url
//! **with** `=` padding, signed (ES256, the 64-byte `R‖S` form) over the padded text. Code
//! written to verify ALB's header accepts it as it is; a strict JWT library may want the padding
//! off (docs/proxy.md says which).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use serde::Serialize;
use serde_json::{Map, Value};

/// The header ALB sets, in ALB's member order.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    pub typ: &'static str,
    pub kid: &'a str,
    pub alg: &'static str,
    pub iss: &'a str,
    pub client: &'a str,
    pub signer: &'a str,
    pub exp: u64,
}

/// `base64url(header).base64url(claims)`, both padded: the text that is signed. The body is the
/// verified claims with `exp` (the assertion's) and `iss` set as in the header.
pub fn signing_input<'c>(
    header: &Header<'_>,
    claims: impl Iterator<Item = (&'c str, &'c Value)>,
) -> Result<String, serde_json::Error> {
    let mut body: Map<String, Value> = claims.map(|(k, v)| (k.to_owned(), v.clone())).collect();
    body.insert("exp".to_owned(), Value::from(header.exp));
    body.insert("iss".to_owned(), Value::from(header.iss));
    let header = serde_json::to_vec(header)?;
    let body = serde_json::to_vec(&body)?;
    Ok(format!(
        "{}.{}",
        URL_SAFE.encode(header),
        URL_SAFE.encode(body)
    ))
}

/// The whole assertion: the signed text, `.`, the padded signature.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE.encode(signature))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    #[test]
    fn parts_are_padded_base64url_and_the_body_takes_the_assertion_exp_and_iss() {
        let header = Header {
            typ: "JWT",
            kid: "k1",
            alg: "ES256",
            iss: "https://issuer.example/pool",
            client: "client-1",
            signer: "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/x/1",
            exp: 1_700_000_060,
        };
        let claims = json!({"sub": "u", "exp": 1_800_000_000u64, "email": "a@b.c"});
        let claims = claims.as_object().unwrap();
        let input = signing_input(&header, claims.iter().map(|(k, v)| (k.as_str(), v))).unwrap();
        let (h, b) = input.split_once('.').unwrap();
        // Canonical padded base64url: it decodes, and encodes back to the same text.
        for part in [h, b] {
            let raw = URL_SAFE.decode(part).unwrap();
            assert_eq!(URL_SAFE.encode(&raw), part);
            assert_eq!(part.len() % 4, 0, "{part}");
        }
        let h: Value = serde_json::from_slice(&URL_SAFE.decode(h).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            serde_json::to_string(&json!({"alg":"ES256","client":"client-1","exp":1_700_000_060u64,
                "iss":"https://issuer.example/pool","kid":"k1",
                "signer":"arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/x/1","typ":"JWT"}))
            .unwrap()
        );
        let b: Value = serde_json::from_slice(&URL_SAFE.decode(b).unwrap()).unwrap();
        assert_eq!(b["exp"], 1_700_000_060u64);
        assert_eq!(b["iss"], "https://issuer.example/pool");
        assert_eq!(b["email"], "a@b.c");
        // A 64-byte signature is 88 characters ending in `==`, as ALB's.
        let whole = assemble(&input, &[7u8; 64]);
        let sig = whole.rsplit('.').next().unwrap();
        assert_eq!(sig.len(), 88);
        assert!(sig.ends_with("=="));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')).unwrap(),
            [7u8; 64]
        );
    }
}
