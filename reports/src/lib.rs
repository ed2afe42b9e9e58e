//! Result model, SLO evaluation, run comparison and the HTML, CSV and JSON writers.
