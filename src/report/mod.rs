//! Reports: terminal text, JSON and JUnit XML.
