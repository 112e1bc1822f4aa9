//! poolgate-authorizer: verifies Cognito user-pool and OIDC tokens against cached JWKS key sets.
