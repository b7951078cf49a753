//! Step 1 of the request path: turn the request target into the one canonical
//! path that rules match and the upstream receives (SPEC §3).
