# mTPI-2 reference tables (validation/reference/mtpi2/mtpi2_tables.json) from the R package escalation's get_mtpi2
#
# escalation 0.2.3 (CRAN source, github.com/cran/escalation commit 1fcc1c3). Its imports include trialr (Stan),
# DiagrammeR and others that are not installable here, so this script source()s the package's R/ files (function
# definitions only; mtpi2_selector.R and the generics/helpers it calls) instead of library(escalation):
#   Rscript make_reference.R <path to the unpacked escalation source>     (needs dplyr, tidyr, purrr, tibble,
#   stringr, magrittr, jsonlite; run from this folder)
#
# For each case and every n = 1..n_max, y = 0..n: fit get_mtpi2(num_doses = 3, target, epsilon1, epsilon2,
# exclusion_certainty, alpha, beta) to one cohort of n patients at dose 2 with y DLTs ("2TTNN..."), and record
#   decision: recommended_dose 3 -> "E", 2 -> "S", 1 -> "D";
#   admissible: dose_admissible()[2] (FALSE when n >= 2 and Pr(p > target | data) >= exclusion_certainty).
# Dose 3 is untreated, so escalation is never blocked by the next dose's data. No randomness.

args <- commandArgs(trailingOnly = TRUE)
src <- if (length(args)) args[1] else "/tmp/stage2-src/escalation"
suppressPackageStartupMessages({
  library(dplyr); library(tidyr); library(purrr); library(tibble); library(stringr); library(magrittr)
  library(jsonlite)
})
for (f in list.files(file.path(src, "R"), full.names = TRUE)) {
  # patient_sample.R and correlated_patient_sample.R define R6 classes (R6 is not installed); mTPI-2 needs neither
  if (basename(f) %in% c("patient_sample.R", "correlated_patient_sample.R")) next
  source(f)
}
version <- read.dcf(file.path(src, "DESCRIPTION"))[, "Version"]

cases <- list(
  list(target = 0.10, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.15, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.20, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.25, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 36),
  list(target = 0.30, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 40),
  list(target = 0.33, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.35, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.40, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.50, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 24),
  list(target = 0.30, epsilon1 = 0.10, epsilon2 = 0.10, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.30, epsilon1 = 0.05, epsilon2 = 0.10, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.25, epsilon1 = 0.03, epsilon2 = 0.03, exclusion_certainty = 0.95, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.30, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.90, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.20, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.99, alpha = 1, beta = 1, n_max = 30),
  list(target = 0.30, epsilon1 = 0.05, epsilon2 = 0.05, exclusion_certainty = 0.95, alpha = 0.5, beta = 0.5, n_max = 30)
)

letters_for <- function(n, y) paste0("2", strrep("T", y), strrep("N", n - y))
out <- list()
for (a in cases) {
  model <- get_mtpi2(num_doses = 3, target = a$target, epsilon1 = a$epsilon1, epsilon2 = a$epsilon2,
                     exclusion_certainty = a$exclusion_certainty, alpha = a$alpha, beta = a$beta)
  decision <- list(); admissible <- list()
  for (n in seq_len(a$n_max)) {
    d <- character(n + 1); adm <- logical(n + 1)
    for (y in 0:n) {
      fit1 <- fit(model, letters_for(n, y))
      d[y + 1] <- c("D", "S", "E")[recommended_dose(fit1)]
      adm[y + 1] <- dose_admissible(fit1)[2]
    }
    decision[[n]] <- d; admissible[[n]] <- adm
  }
  call <- sprintf("get_mtpi2(num_doses = 3, target = %s, epsilon1 = %s, epsilon2 = %s, exclusion_certainty = %s, alpha = %s, beta = %s) %%>%% fit(\"2\" + y x \"T\" + (n - y) x \"N\")",
                  a$target, a$epsilon1, a$epsilon2, a$exclusion_certainty, a$alpha, a$beta)
  id <- sprintf("target%.2f_e1%.2f_e2%.2f_cert%.2f_a%.1f_b%.1f_n%d", a$target, a$epsilon1, a$epsilon2,
                a$exclusion_certainty, a$alpha, a$beta, a$n_max)
  out[[id]] <- list(id = id, call = call, args = a, decision = decision, admissible = admissible)
  message(id)
}

doc <- list(
  description = paste("escalation::get_mtpi2 decisions at the current dose (dose 2 of 3) for every n = 1..n_max",
                      "patients and y = 0..n DLTs there: decision[[n]][y + 1] in E/S/D (recommended dose 3/2/1),",
                      "admissible[[n]][y + 1] = dose_admissible()[2] (FALSE: excluded, n >= 2 and",
                      "Pr(p > target | Beta(alpha + y, beta + n - y)) >= exclusion_certainty)."),
  provenance = list(generated_utc = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
                    script = "validation/reference/mtpi2/make_reference.R", R_version = R.version.string,
                    packages = list(escalation = unname(version),
                                    escalation_source = "github.com/cran/escalation commit 1fcc1c3, R/ files source()d",
                                    dplyr = as.character(packageVersion("dplyr")),
                                    jsonlite = as.character(packageVersion("jsonlite"))),
                    platform = R.version$platform),
  cases = out)
jsonlite::write_json(doc, "mtpi2_tables.json", auto_unbox = TRUE, digits = NA, pretty = FALSE)
back <- jsonlite::fromJSON("mtpi2_tables.json", simplifyVector = FALSE)
stopifnot(length(back$cases) == length(out))
message("wrote mtpi2_tables.json (", length(out), " cases)")
