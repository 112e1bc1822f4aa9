//! poolgate-policies: the policy file, its validation, route matching, role mapping and decisions.
