//! Step 1 of the request path: turn the request target into the one canonical
//! path that rules match and the upstream receives (SPEC §3).
//! TEMPORARY stand-in with the settled API; the real module lands from the normalize branch.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedPath(String);
impl NormalizedPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    path: NormalizedPath,
    query: Option<String>,
}
impl Target {
    pub fn path(&self) -> &NormalizedPath {
        &self.path
    }
    pub fn match_path(&self) -> &str {
        &self.path.0
    }
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path.0, q),
            None => self.path.0.clone(),
        }
    }
}
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("request target is not origin-form")]
    NotOriginForm,
}
pub fn normalize(uri: &http::Uri, version: http::Version) -> Result<Target, PathError> {
    if version != http::Version::HTTP_2 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(PathError::NotOriginForm);
    }
    normalize_str(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}
pub fn normalize_str(target: &str) -> Result<Target, PathError> {
    if !target.starts_with('/') || target.contains("..") || target.contains("%2") {
        return Err(PathError::NotOriginForm);
    }
    let (p, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    Ok(Target {
        path: NormalizedPath(p.to_owned()),
        query: q,
    })
}
