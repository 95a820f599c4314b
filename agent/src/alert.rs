//! The alert document (Elastic alert fields + ECS objects) built from a rule match.
