"""Tests of serattn/report/ and serattn/plots/: the report page, figures, figure scripts."""
