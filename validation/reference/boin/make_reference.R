# BOIN reference outputs (validation/reference/boin/)
#
# RECONSTRUCTED SCRIPT. The JSON files in this folder were produced on 2026-11-24 by the original
# generator scripts (scripts/boin_boundaries.R, boin_select_mtd.R, boin_get_oc.R), which are not part of this repository. This script was written
# afterwards from the calls those scripts recorded (every "call" string below is copied verbatim from
# the JSON files; the skeletons and settings from this folder's README.md), to document how the
# numbers arise and to let anyone regenerate them. It has NOT been run in this repository (no R was
# available where it was written); expect the package outputs listed below to match the committed
# JSON, and the provenance blocks, timings and the fields marked "not regenerated" to differ.
#
# Provenance of the committed JSON: R 4.2.2 (x86_64-pc-linux-gnu), BOIN 2.7.2; 2-core AMD EPYC;
# RNG Mersenne-Twister / Inversion / Rejection (R's defaults).
#
# Run from this folder:  Rscript make_reference.R     (needs BOIN 2.7.2, jsonlite)
# Output: boundaries.json, select_mtd.json, get_oc.json (written next to this script; compare with git diff).
#
# Not regenerated: select_mtd.json "internals_full_precision" (the original copied select.mtd's local
# variables with a base-R trace() exit hook) and get_oc.json "derived_from_per_trial_data" (per-trial
# matrices copied with trace() in an extra untimed run); get_oc timings are re-measured (3 repeats).

suppressPackageStartupMessages({ library(BOIN); library(jsonlite) })

# ---- JSON writing: exact doubles (digits = NA: shortest representation that reads back to the same
# double), NA -> null, NaN / Inf -> the strings "NaN" / "Inf" (JSON has no such numbers)
specials_to_strings <- function(x) {
  if (is.list(x)) return(lapply(x, specials_to_strings))
  if (is.double(x) && any(is.nan(x) | is.infinite(x))) {
    out <- as.list(x)
    out[is.nan(x)] <- "NaN"; out[is.infinite(x) & x > 0] <- "Inf"; out[is.infinite(x) & x < 0] <- "-Inf"
    out[is.na(x) & !is.nan(x)] <- list(NULL)
    return(out)
  }
  x
}
write_reference <- function(x, file) {
  jsonlite::write_json(specials_to_strings(x), file, auto_unbox = TRUE, digits = NA, na = "null",
                       null = "null", pretty = TRUE)
  back <- jsonlite::fromJSON(file, simplifyVector = FALSE)  # re-read: every value must survive
  stopifnot(length(back) == length(x))
  message("wrote ", file)
}
provenance <- function(script, packages) {
  list(generated_utc = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"), script = script,
       R_version = R.version.string,
       packages = lapply(setNames(packages, packages), function(p) as.character(packageVersion(p))),
       platform = R.version$platform, RNGkind = RNGkind())
}

# ---- get.boundary(): every argument explicit (defaults evaluated as the package does)
boundary_calls <- c(
  "target0.15_cs3_nc10" =
    "get.boundary(target = 0.15, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.09, p.tox = 0.21, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.20_cs3_nc10" =
    "get.boundary(target = 0.2, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.12, p.tox = 0.28, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.25_cs3_nc10" =
    "get.boundary(target = 0.25, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.15, p.tox = 0.35, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.30_cs3_nc10" =
    "get.boundary(target = 0.3, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.35_cs3_nc10" =
    "get.boundary(target = 0.35, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.21, p.tox = 0.49, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.30_cs1_nc10" =
    "get.boundary(target = 0.3, ncohort = 10, cohortsize = 1, n.earlystop = 100, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.30_cs4_nc10" =
    "get.boundary(target = 0.3, ncohort = 10, cohortsize = 4, n.earlystop = 100, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05)",
  "target0.30_cs3_nc10_extrasafe_offset0.05" =
    "get.boundary(target = 0.3, ncohort = 10, cohortsize = 3, n.earlystop = 100, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = TRUE, offset = 0.05)"
)

cases <- list()
for (id in names(boundary_calls)) {
  res <- eval(parse(text = boundary_calls[[id]]))
  args <- as.list(parse(text = boundary_calls[[id]])[[1]])[-1]
  full <- if (!is.null(res$full_boundary_tab)) res$full_boundary_tab else res$boundary_tab
  case <- list(id = id, call = boundary_calls[[id]], args = lapply(args, eval),
               lambda_e = res$lambda_e, lambda_d = res$lambda_d,
               full_table = list(n = unname(full[1, ]), escalate_if_ntox_le = unname(full[2, ]),
                                 deescalate_if_ntox_ge = unname(full[3, ]),
                                 eliminate_if_ntox_ge = unname(full[4, ])),
               boundary_tab_at_cohort_ends = lapply(seq_len(nrow(res$boundary_tab)),
                                                    function(i) unname(res$boundary_tab[i, ])))
  if (!is.null(res$stop_boundary)) case$extrasafe_stop <- list(cutoff = res$cutoff, stop_boundary = res$stop_boundary)
  cases[[id]] <- case
}
write_reference(list(description = "BOIN::get.boundary() tables", provenance = provenance("make_reference.R", "BOIN"),
                     cases = cases), "boundaries.json")

# ---- select.mtd(): 22 data sets, all arguments explicit; no randomness
select_calls <- c(
  "pkg_example" =
    "select.mtd(target = 0.3, npts = c(3, 3, 15, 9, 0), ntox = c(0, 0, 4, 4, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "monotone_no_pooling" =
    "select.mtd(target = 0.3, npts = c(3, 6, 12, 6, 3), ntox = c(0, 1, 3, 3, 2), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "pava_pool_2doses" =
    "select.mtd(target = 0.3, npts = c(3, 6, 9, 6, 0), ntox = c(1, 0, 3, 2, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "pava_pool_3doses" =
    "select.mtd(target = 0.3, npts = c(6, 6, 6, 6, 6), ntox = c(2, 1, 0, 3, 2), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "pava_pool_tie_below_target" =
    "select.mtd(target = 0.3, npts = c(3, 6, 6, 3, 0), ntox = c(0, 2, 1, 2, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "eliminated_dose4" =
    "select.mtd(target = 0.3, npts = c(3, 6, 12, 6, 0), ntox = c(0, 1, 3, 5, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "lowest_dose_eliminated_no_mtd" =
    "select.mtd(target = 0.3, npts = c(3, 0, 0, 0, 0), ntox = c(3, 0, 0, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "lowest_dose_eliminated_later_doses_treated" =
    "select.mtd(target = 0.3, npts = c(6, 3, 0, 0, 0), ntox = c(5, 1, 0, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "boundMTD_false_selects_above_lambda_d" =
    "select.mtd(target = 0.3, npts = c(3, 3, 9, 9, 0), ntox = c(0, 0, 1, 4, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "boundMTD_true_restricts" =
    "select.mtd(target = 0.3, npts = c(3, 3, 9, 9, 0), ntox = c(0, 0, 1, 4, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = TRUE, p.tox = 0.42)",
  "boundMTD_false_same_data" =
    "select.mtd(target = 0.3, npts = c(6, 3, 0, 0, 0), ntox = c(3, 2, 0, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "extrasafe_false" =
    "select.mtd(target = 0.3, npts = c(3, 0, 0, 0, 0), ntox = c(2, 0, 0, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "extrasafe_true" =
    "select.mtd(target = 0.3, npts = c(3, 0, 0, 0, 0), ntox = c(2, 0, 0, 0, 0), cutoff.eli = 0.95, extrasafe = TRUE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)",
  "all_safe_select_top" =
    "select.mtd(target = 0.25, npts = c(3, 3, 3, 3, 3, 15), ntox = c(0, 0, 0, 0, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.35)",
  "target0.20_6doses" =
    "select.mtd(target = 0.2, npts = c(3, 3, 6, 12, 6, 0), ntox = c(0, 0, 1, 2, 1, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.28)",
  "cutoff_eli_0.95_dose3_kept" =
    "select.mtd(target = 0.3, npts = c(3, 6, 15, 0, 0), ntox = c(0, 0, 7, 0, 0), cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, p.tox = 0.42)"
)

datasets <- list()
for (id in names(select_calls)) {
  res <- eval(parse(text = select_calls[[id]]))
  datasets[[id]] <- list(id = id, call = select_calls[[id]], MTD = res$MTD,
                         p_est_as_returned = as.list(res$p_est), p_overdose_as_returned = res$p_overdose)
}
write_reference(list(description = "BOIN::select.mtd() cases", provenance = provenance("make_reference.R", "BOIN"),
                     datasets = datasets), "select_mtd.json")

# ---- get.oc(): 10,000 trials per scenario, seed = 6 (the package default), timed 3 times
oc_calls <- c(
  "T30_S1_mtd1" =
    "get.oc(target = 0.3, p.true = c(0.3, 0.42, 0.55, 0.65, 0.75, 0.85), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S3_mtd3" =
    "get.oc(target = 0.3, p.true = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S4_mtd4" =
    "get.oc(target = 0.3, p.true = c(0.02, 0.06, 0.12, 0.3, 0.45, 0.6), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S6_mtd6" =
    "get.oc(target = 0.3, p.true = c(0.01, 0.03, 0.05, 0.08, 0.13, 0.3), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S7_all_toxic" =
    "get.oc(target = 0.3, p.true = c(0.46, 0.58, 0.68, 0.78, 0.85, 0.9), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S8_all_safe" =
    "get.oc(target = 0.3, p.true = c(0.02, 0.04, 0.06, 0.08, 0.1, 0.12), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T25_S1_mtd3" =
    "get.oc(target = 0.25, p.true = c(0.05, 0.1, 0.25, 0.4, 0.55), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.15, p.tox = 0.35, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T25_S2_mtd2" =
    "get.oc(target = 0.25, p.true = c(0.1, 0.25, 0.4, 0.55, 0.7), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.15, p.tox = 0.35, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T25_S4_mtd5" =
    "get.oc(target = 0.25, p.true = c(0.01, 0.03, 0.06, 0.12, 0.25), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.15, p.tox = 0.35, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "PKG_EXAMPLE_T30_ncohort20" =
    "get.oc(target = 0.3, p.true = c(0.05, 0.15, 0.3, 0.45, 0.6), ncohort = 20, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T30_S3_mtd3_boundMTD" =
    "get.oc(target = 0.3, p.true = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), ncohort = 10, cohortsize = 3, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = TRUE, ntrial = 10000, seed = 6)",
  "T30_S3_mtd3_cohortsize1_ncohort30" =
    "get.oc(target = 0.3, p.true = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), ncohort = 30, cohortsize = 1, n.earlystop = 100, startdose = 1, titration = FALSE, p.saf = 0.18, p.tox = 0.42, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)",
  "T25_S1_mtd3_nearlystop12" =
    "get.oc(target = 0.25, p.true = c(0.05, 0.1, 0.25, 0.4, 0.55), ncohort = 10, cohortsize = 3, n.earlystop = 12, startdose = 1, titration = FALSE, p.saf = 0.15, p.tox = 0.35, cutoff.eli = 0.95, extrasafe = FALSE, offset = 0.05, boundMTD = FALSE, ntrial = 10000, seed = 6)"
)

scenarios <- list()
for (id in names(oc_calls)) {
  times <- list(); res <- NULL
  for (r in 1:3) {
    load_before <- as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])
    tm <- system.time(res_r <- eval(parse(text = oc_calls[[id]])))
    if (!is.null(res)) stopifnot(identical(res, res_r))  # the same seed gives the same result
    res <- res_r
    times[[r]] <- c(elapsed = tm[["elapsed"]], user = tm[["user.self"]], sys = tm[["sys.self"]], load_before)
  }
  tt <- do.call(rbind, times)
  scenarios[[id]] <- list(id = id, call = oc_calls[[id]],
                          timing = list(n_repeats = 3L, elapsed_s = tt[, "elapsed"], user_s = tt[, "user"],
                                        sys_s = tt[, "sys"], median_elapsed_s = median(tt[, "elapsed"]),
                                        min_elapsed_s = min(tt[, "elapsed"])),
                          result = res[intersect(names(res), c("selpercent", "npatients", "ntox", "totaltox",
                                                                 "totaln", "percentstop", "overdose60",
                                                                 "overdose80", "lambda_e", "lambda_d"))])
}
write_reference(list(description = "BOIN::get.oc() operating characteristics", provenance = provenance("make_reference.R", "BOIN"),
                     scenarios = scenarios), "get_oc.json")
