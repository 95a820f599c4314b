//! The ECS view of an exec event: the field names Elastic rules read, resolved without building a document.
