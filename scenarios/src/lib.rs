//! Goose scenarios, workloads, the live metric recorder and default SLO files.
