//! Root package of the workspace: holds the example agent and end-to-end tests only.
