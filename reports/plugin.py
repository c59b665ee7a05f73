"""Records every conformance item as data (results JSON) and writes the HTML report."""
