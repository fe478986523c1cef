# Keyboard reference tables (validation/reference/keyboard/keyboard_tables.json)
#
# Run from this folder:  R_LIBS_USER=<lib with Keyboard 0.1.3> Rscript make_reference.R   (needs Keyboard, jsonlite)
# Keyboard 0.1.3 is the CRAN source (github.com/cran/Keyboard, commit 75de0db), installed with
# R CMD INSTALL into a private library; Iso, ggplot2 and Rcpp from Debian.
#
# For each case get.boundary.kb(target, ncohort, cohortsize, marginL, marginR, cutoff.eli) is called with every
# argument explicit. Its return value ($full_boundary_tab, $boundary_tab) is written as it is; the function's
# entry-by-entry matrix `decision_table` (E / S / D / DU for ntox = 0..ntr, ntr = 1..npts), which it builds but
# does not return, is copied out of the function's frame at exit with base R's trace() (copies only; the
# traced call's boundary tables are checked identical() to an untraced call's). No randomness.

suppressPackageStartupMessages({ library(Keyboard); library(jsonlite) })

cases <- list(
  list(target = 0.10, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.15, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.20, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.25, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.30, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.33, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.35, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.40, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.50, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.25, ncohort = 12, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.30, ncohort = 20, cohortsize = 2, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.20, ncohort = 24, cohortsize = 1, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.95),
  list(target = 0.30, ncohort = 10, cohortsize = 3, marginL = 0.10, marginR = 0.10, cutoff.eli = 0.95),
  list(target = 0.30, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.10, cutoff.eli = 0.95),
  list(target = 0.25, ncohort = 10, cohortsize = 3, marginL = 0.03, marginR = 0.03, cutoff.eli = 0.95),
  list(target = 0.30, ncohort = 10, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.90),
  list(target = 0.20, ncohort = 12, cohortsize = 3, marginL = 0.05, marginR = 0.05, cutoff.eli = 0.99)
)

captured <- NULL
trace("get.boundary.kb", exit = quote(assign("captured", decision_table, envir = .GlobalEnv)), print = FALSE)

boundary_rows <- function(b) {
  list(n = as.integer(b[1, ]), escalate_if_ntox_le = as.integer(b[2, ]),
       deescalate_if_ntox_ge = as.integer(b[3, ]), eliminate_if_ntox_ge = as.integer(b[4, ]))
}

out <- list()
for (a in cases) {
  call <- sprintf("get.boundary.kb(target = %s, ncohort = %d, cohortsize = %d, marginL = %s, marginR = %s, cutoff.eli = %s, n.earlystop = 100, extrasafe = FALSE, offset = 0.05)",
                  a$target, a$ncohort, a$cohortsize, a$marginL, a$marginR, a$cutoff.eli)
  captured <- NULL
  res <- eval(parse(text = call))
  dt <- captured
  stopifnot(is.matrix(dt))
  npts <- a$ncohort * a$cohortsize
  rows <- lapply(seq_len(npts), function(ntr) as.character(dt[seq_len(ntr + 1), ntr]))
  stopifnot(!anyNA(unlist(rows)))
  id <- sprintf("target%.2f_mL%.2f_mR%.2f_eli%.2f_n%d_cs%d", a$target, a$marginL, a$marginR, a$cutoff.eli,
                npts, a$cohortsize)
  out[[id]] <- list(id = id, call = call, args = a, npts = npts,
                    decision_table = rows,
                    full_boundary_tab = boundary_rows(res$full_boundary_tab),
                    boundary_tab = boundary_rows(res$boundary_tab))
}
untrace("get.boundary.kb")
# the trace copied locals only: the untraced function returns the same tables
for (id in names(out)) {
  res <- eval(parse(text = out[[id]]$call))
  stopifnot(identical(boundary_rows(res$full_boundary_tab), out[[id]]$full_boundary_tab))
}

doc <- list(
  description = paste("Keyboard::get.boundary.kb decision tables, entry by entry (decision_table[[n]] = the",
                      "decisions for ntox = 0..n with n patients at the current dose), and its boundary tables.",
                      "NA boundaries are null. Rows of boundary tables: n, escalate if ntox <=, de-escalate if",
                      "ntox >=, eliminate if ntox >=."),
  provenance = list(generated_utc = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
                    script = "validation/reference/keyboard/make_reference.R", R_version = R.version.string,
                    packages = list(Keyboard = as.character(packageVersion("Keyboard")),
                                    jsonlite = as.character(packageVersion("jsonlite"))),
                    platform = R.version$platform),
  cases = out)
jsonlite::write_json(doc, "keyboard_tables.json", auto_unbox = TRUE, digits = NA, na = "null", pretty = FALSE)
back <- jsonlite::fromJSON("keyboard_tables.json", simplifyVector = FALSE)
stopifnot(length(back$cases) == length(out))
message("wrote keyboard_tables.json (", length(out), " cases)")
