# Cross-reference for escalade's BF-BOIN engine: the R package bfboin (openpharma/bfboin, commit 03a1b83,
# R/bf_boin_oc.R, version 0.1.1 + later fixes; BOIN 2.7.2 for get.boundary / select.mtd) on the twelve
# scenarios of Zhao et al. (2024) Table 3 (read from table4.json), with the paper's settings as the
# package's vignette "Compare_to_publication" gives them (10 cohorts of 3, n.earlystop = 9, n.cap = 12,
# 3 patients a month, DLT window 1 month), Poisson accrual (documented by the package as "consistent with
# publication") and three.plus.three = TRUE (1/3 stays, as the paper's table rows need).
# BOIN rows: the same code with every response rate 0 (no dose ever opens for backfill).
# Per run: the mean and SD over trials of each Table 4 column (selection as 0/100 per trial).
# Run: R_LIBS_USER=<lib with BOIN> Rscript bfboin_oc.R bf_boin_oc.R table4.json <first> <last> <ntrial> <out.json> [accrual: poisson (default) or uniform]
library(BOIN)
library(jsonlite)
args <- commandArgs(TRUE)
source(args[1])
tab <- fromJSON(args[2], simplifyVector = FALSE)
first <- as.integer(args[3]); last <- as.integer(args[4]); N <- as.integer(args[5])
accrual <- if (length(args) >= 7) args[7] else "poisson"
out <- list()
for (sc in first:last) {
  p <- unlist(tab$scenarios[[sc]]$p_dlt); resp <- unlist(tab$scenarios[[sc]]$p_response)
  mtd <- which.min(abs(p - 0.25))
  runs <- list()
  for (key in c("bf_boin", "boin")) {
    r <- if (key == "bf_boin") resp else rep(0, length(p))
    set.seed(1000 + sc)
    res <- do.call(rbind, lapply(1:N, function(i) sim.one.trial(i, target = 0.25, p.true = p, ncohort = 10,
      cohortsize = 3, n.earlystop = 9, n.cap = 12, n.per.month = 3, dlt.window = 1, p.response.true = r,
      three.plus.three = TRUE, accrual = accrual)))
    id <- res$trial.id
    sel <- tapply(res$dselect, id, `[`, 1)
    cols <- list(
      correct_selection_pct = 100 * (sel == mtd),
      overdose_selection_pct = 100 * (sel > mtd & sel != 99),
      patients_below_mtd = tapply(res$n * (res$d < mtd), id, sum),
      patients_at_mtd = tapply(res$n * (res$d == mtd), id, sum),
      patients_above_mtd = tapply(res$n * (res$d > mtd), id, sum),
      sample_size = tapply(res$n, id, sum),
      duration_months = tapply(res$max.t, id, `[`, 1))
    runs[[key]] <- list(mean = lapply(cols, mean), sd = lapply(cols, sd))
  }
  out[[sc - first + 1]] <- c(list(scenario = sc, n_trials = N), runs)
  cat("scenario", sc, "done\n")
}
write(toJSON(out, auto_unbox = TRUE, digits = 6, pretty = TRUE), args[6])
