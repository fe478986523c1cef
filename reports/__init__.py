"""Reports: operating-characteristics tables, plots, the HTML/PDF appendix and the amendment diff."""
