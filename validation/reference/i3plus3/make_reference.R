# i3+3 reference tables (validation/reference/i3plus3/i3plus3_tables.json)
#
# From the R package FIND 0.1.1 (Ji Y, Zhang Y; github.com/oliviazhang0416/FIND commit 55c6fc5, by the i3+3
# authors' group), function get_decision_i3plus3(pT, EI, npts): the i3+3 decisions E / S / D / DU of
# Liu, Wang & Ji (2020), J Biopharm Stat 30(2):294-304, for n = 3..npts and y = 0..n. FIND is not installed
# (not on this machine's CRAN mirror); this script source()s that one file:
#   Rscript make_reference.R <path to the unpacked FIND source>     (run from this folder; needs jsonlite)
# No randomness.

args <- commandArgs(trailingOnly = TRUE)
src <- if (length(args)) args[1] else "/tmp/stage2-src/FIND"
suppressPackageStartupMessages(library(jsonlite))
source(file.path(src, "R", "get_decision_i3plus3.R"))
version <- read.dcf(file.path(src, "DESCRIPTION"))[, "Version"]

cases <- list(
  list(pT = 0.10, EI = c(0.05, 0.15), npts = 30), list(pT = 0.15, EI = c(0.10, 0.20), npts = 30),
  list(pT = 0.20, EI = c(0.15, 0.25), npts = 30), list(pT = 0.25, EI = c(0.20, 0.30), npts = 36),
  list(pT = 0.30, EI = c(0.25, 0.35), npts = 40), list(pT = 0.33, EI = c(0.28, 0.38), npts = 30),
  list(pT = 0.35, EI = c(0.30, 0.40), npts = 30), list(pT = 0.40, EI = c(0.35, 0.45), npts = 30),
  list(pT = 0.50, EI = c(0.40, 0.60), npts = 24), list(pT = 0.30, EI = c(0.20, 0.40), npts = 30),
  list(pT = 0.30, EI = c(0.25, 0.40), npts = 30), list(pT = 0.25, EI = c(0.22, 0.28), npts = 30)
)
out <- list()
for (a in cases) {
  res <- get_decision_i3plus3(pT = a$pT, EI = a$EI, npts = a$npts)$tab
  rows <- lapply(3:a$npts, function(n) res$Decision[res$n == n][order(res$y[res$n == n])])
  id <- sprintf("pT%.2f_EI%.2f-%.2f_n%d", a$pT, a$EI[1], a$EI[2], a$npts)
  out[[id]] <- list(id = id, call = sprintf("get_decision_i3plus3(pT = %s, EI = c(%s, %s), npts = %d)",
                                            a$pT, a$EI[1], a$EI[2], a$npts),
                    args = a, n_from = 3, decision = rows)
}
doc <- list(
  description = paste("FIND::get_decision_i3plus3 tables: decision[[k]] = decisions for y = 0..n at n = k + 2",
                      "(the package tabulates n >= 3 only). DU: Pr(p > pT | Beta(y + 1, n - y + 1)) > 0.95."),
  provenance = list(generated_utc = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
                    script = "validation/reference/i3plus3/make_reference.R", R_version = R.version.string,
                    packages = list(FIND = unname(version),
                                    FIND_source = "github.com/oliviazhang0416/FIND commit 55c6fc5, R/get_decision_i3plus3.R source()d",
                                    jsonlite = as.character(packageVersion("jsonlite"))),
                    platform = R.version$platform),
  cases = out)
jsonlite::write_json(doc, "i3plus3_tables.json", auto_unbox = TRUE, digits = NA, pretty = FALSE)
stopifnot(length(jsonlite::fromJSON("i3plus3_tables.json", simplifyVector = FALSE)$cases) == length(out))
message("wrote i3plus3_tables.json (", length(out), " cases)")
