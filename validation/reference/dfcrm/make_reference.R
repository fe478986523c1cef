# dfcrm reference outputs (validation/reference/dfcrm/)
#
# RECONSTRUCTED SCRIPT. The JSON files in this folder were produced on 2026-11-24 by the original
# generator scripts (scripts/dfcrm_getprior.R, dfcrm_crm.R, dfcrm_crmsim.R), which are not part of this repository. This script was written
# afterwards from the calls those scripts recorded (every "call" string below is copied verbatim from
# the JSON files; the skeletons and settings from this folder's README.md), to document how the
# numbers arise and to let anyone regenerate them. It has NOT been run in this repository (no R was
# available where it was written); expect the package outputs listed below to match the committed
# JSON, and the provenance blocks, timings and the fields marked "not regenerated" to differ.
#
# Provenance of the committed JSON: R 4.2.2 (x86_64-pc-linux-gnu), dfcrm 0.2-2.1; 2-core AMD EPYC;
# RNG Mersenne-Twister / Inversion / Rejection (R's defaults).
#
# Run from this folder:  Rscript make_reference.R     (needs dfcrm 0.2-2.1, jsonlite)
# Output: getprior.json, crm_posterior.json, titecrm.json, crmsim.json, titesim.json (written next to this script; compare with git diff).
#
# Not regenerated: crm_posterior.json "numerical_check_tight_tolerance" (the same posterior moments
# re-integrated with dfcrm's integrands at rel.tol = 1e-12, not crm() output) and the crmsim / titesim
# "derived_from_per_trial_data" (per-trial vectors copied with trace() on dfcrm:::mtrials / mtite).
# Usage of the simulation part as in the original: Rscript make_reference.R [repeats] [nsim], default 3 2000.

suppressPackageStartupMessages({ library(dfcrm); library(jsonlite) })

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

# ---- skeletons (README: skeleton names used in calls)
sk6 <- c(0.05, 0.10, 0.20, 0.35, 0.50, 0.70)
sk5 <- getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = "empiric", intcpt = 3)
sk6b <- getprior(halfwidth = 0.05, target = 0.30, nu = 3, nlevel = 6, model = "empiric", intcpt = 3)
sk5L <- getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = "logistic", intcpt = 3)
skeletons <- list(sk6 = list(expr = "c(0.05, 0.10, 0.20, 0.35, 0.50, 0.70)", value = sk6), sk5 = list(expr = "getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = \"empiric\", intcpt = 3)", value = sk5), sk6b = list(expr = "getprior(halfwidth = 0.05, target = 0.30, nu = 3, nlevel = 6, model = \"empiric\", intcpt = 3)", value = sk6b), sk5L = list(expr = "getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = \"logistic\", intcpt = 3)", value = sk5L))
with_skeletons <- function(call) gsub("<(sk[0-9A-Za-z]+)>", "\\1", call)  # '<sk5>' -> sk5

# ---- getprior()
getprior_calls <- c(
  "1" =
    "getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = \"empiric\", intcpt = 3)",
  "2" =
    "getprior(halfwidth = 0.05, target = 0.3, nu = 3, nlevel = 6, model = \"empiric\", intcpt = 3)",
  "3" =
    "getprior(halfwidth = 0.04, target = 0.2, nu = 2, nlevel = 5, model = \"empiric\", intcpt = 3)",
  "4" =
    "getprior(halfwidth = 0.07, target = 0.25, nu = 1, nlevel = 5, model = \"empiric\", intcpt = 3)",
  "5" =
    "getprior(halfwidth = 0.05, target = 0.25, nu = 5, nlevel = 5, model = \"empiric\", intcpt = 3)",
  "6" =
    "getprior(halfwidth = 0.08, target = 0.3, nu = 4, nlevel = 6, model = \"empiric\", intcpt = 3)",
  "7" =
    "getprior(halfwidth = 0.1, target = 0.25, nu = 3, nlevel = 6, model = \"logistic\", intcpt = 3)",
  "8" =
    "getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = \"logistic\", intcpt = 3)",
  "9" =
    "getprior(halfwidth = 0.05, target = 0.3, nu = 4, nlevel = 6, model = \"logistic\", intcpt = 3)",
  "10" =
    "getprior(halfwidth = 0.06, target = 0.2, nu = 1, nlevel = 5, model = \"logistic\", intcpt = 3)",
  "11" =
    "getprior(halfwidth = 0.05, target = 0.25, nu = 5, nlevel = 5, model = \"logistic\", intcpt = 3)",
  "12" =
    "getprior(halfwidth = 0.05, target = 0.25, nu = 3, nlevel = 5, model = \"logistic\", intcpt = 2)"
)

cases <- lapply(unname(getprior_calls), function(cl) list(call = cl, skeleton = eval(parse(text = cl))))
write_reference(list(description = "dfcrm::getprior() skeletons", provenance = provenance("make_reference.R", "dfcrm"),
                     cases = cases), "getprior.json")

crm_fields <- function(fit) {
  list(estimate = fit$estimate, post_var = fit$post.var, post_sd = sqrt(fit$post.var), ptox = fit$ptox,
       ptoxL = fit$ptoxL, ptoxU = fit$ptoxU, mtd = fit$mtd, dosescaled = fit$dosescaled,
       prior_var = fit$prior.var, conf.level = fit$conf.level)
}
run_fit <- function(call) {
  out <- tryCatch(crm_fields(eval(parse(text = with_skeletons(call)))),
                  error = function(e) list(error = conditionMessage(e)))  # e.g. " mle does not exist!"
  c(list(call = call), out)
}

# ---- crm(): 15 data sets x {empiric, logistic} x {bayes, mle}
crm_calls <- c(
  "D01_help_example/empiric_bayes" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 0, 1, 1, 0, 0, 0), level = c(3, 4, 4, 3, 3, 4, 3, 2, 2, 2), n = 10L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D01_help_example/empiric_mle" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 0, 1, 1, 0, 0, 0), level = c(3, 4, 4, 3, 3, 4, 3, 2, 2, 2), n = 10L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D01_help_example/logistic_bayes" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 0, 1, 1, 0, 0, 0), level = c(3, 4, 4, 3, 3, 4, 3, 2, 2, 2), n = 10L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D01_help_example/logistic_mle" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 0, 1, 1, 0, 0, 0), level = c(3, 4, 4, 3, 3, 4, 3, 2, 2, 2), n = 10L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D02_one_patient_no_dlt/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = 0, level = 1, n = 1L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D02_one_patient_no_dlt/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = 0, level = 1, n = 1L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D02_one_patient_no_dlt/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = 0, level = 1, n = 1L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D02_one_patient_no_dlt/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = 0, level = 1, n = 1L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D03_one_patient_dlt/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = 1, level = 1, n = 1L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D03_one_patient_dlt/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = 1, level = 1, n = 1L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D03_one_patient_dlt/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = 1, level = 1, n = 1L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D03_one_patient_dlt/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = 1, level = 1, n = 1L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D04_three_no_dlt_dose1/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D04_three_no_dlt_dose1/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D04_three_no_dlt_dose1/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D04_three_no_dlt_dose1/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D05_first_dlt_at_dose3/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D05_first_dlt_at_dose3/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D05_first_dlt_at_dose3/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D05_first_dlt_at_dose3/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D07_dlts_at_low_doses/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 1, 0, 1, 1, 1), level = c(1, 1, 1, 2, 2, 2), n = 6L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D07_dlts_at_low_doses/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 1, 0, 1, 1, 1), level = c(1, 1, 1, 2, 2, 2), n = 6L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D07_dlts_at_low_doses/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 1, 0, 1, 1, 1), level = c(1, 1, 1, 2, 2, 2), n = 6L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D07_dlts_at_low_doses/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 1, 0, 1, 1, 1), level = c(1, 1, 1, 2, 2, 2), n = 6L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D08_all_dlt/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(1, 1, 1), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D08_all_dlt/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(1, 1, 1), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D08_all_dlt/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(1, 1, 1), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D08_all_dlt/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(1, 1, 1), level = c(1, 1, 1), n = 3L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D10_completed_30_target030/empiric_bayes" =
    "crm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), n = 30L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D10_completed_30_target030/empiric_mle" =
    "crm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), n = 30L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D10_completed_30_target030/logistic_bayes" =
    "crm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), n = 30L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D10_completed_30_target030/logistic_mle" =
    "crm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), n = 30L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D11_top_dose_no_dlt/empiric_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 0), level = c(1, 2, 3, 4, 5, 5, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D11_top_dose_no_dlt/empiric_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 0), level = c(1, 2, 3, 4, 5, 5, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D11_top_dose_no_dlt/logistic_bayes" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 0), level = c(1, 2, 3, 4, 5, 5, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D11_top_dose_no_dlt/logistic_mle" =
    "crm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 0, 0), level = c(1, 2, 3, 4, 5, 5, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D13_target020_start3/empiric_bayes" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(3, 3, 3, 4, 4, 4, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D13_target020_start3/empiric_mle" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(3, 3, 3, 4, 4, 4, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D13_target020_start3/logistic_bayes" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(3, 3, 3, 4, 4, 4, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D13_target020_start3/logistic_mle" =
    "crm(prior = <sk6>, target = 0.2, tox = c(0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(3, 3, 3, 4, 4, 4, 5, 5, 5), n = 9L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D15_logistic_calibrated_skeleton/empiric_bayes" =
    "crm(prior = <sk5L>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, conf.level = 0.9, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D15_logistic_calibrated_skeleton/empiric_mle" =
    "crm(prior = <sk5L>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, conf.level = 0.9, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D15_logistic_calibrated_skeleton/logistic_bayes" =
    "crm(prior = <sk5L>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, conf.level = 0.9, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)",
  "D15_logistic_calibrated_skeleton/logistic_mle" =
    "crm(prior = <sk5L>, target = 0.25, tox = c(0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, conf.level = 0.9, method = \"mle\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, var.est = TRUE)"
)

datasets <- list()
for (key in names(crm_calls)) {
  parts <- strsplit(key, "/")[[1]]
  datasets[[parts[1]]]$fits[[parts[2]]] <- run_fit(crm_calls[[key]])
}
write_reference(list(description = "dfcrm::crm() posteriors", skeletons = skeletons,
                     provenance = provenance("make_reference.R", "dfcrm"), datasets = datasets),
                "crm_posterior.json")

# ---- titecrm(): 3 data sets x 4 variants
titecrm_calls <- c(
  "T01_help_example/empiric_bayes" =
    "titecrm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 1, 0, 0, 0, 0, 0), level = c(3, 3, 3, 4, 4, 3, 2, 2, 2, 3), n = 10L, followup = c(178, 181, 168, 181, 24, 181, 179, 102, 42, 3), obswin = 180, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T01_help_example/logistic_bayes" =
    "titecrm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 1, 0, 0, 0, 0, 0), level = c(3, 3, 3, 4, 4, 3, 2, 2, 2, 3), n = 10L, followup = c(178, 181, 168, 181, 24, 181, 179, 102, 42, 3), obswin = 180, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"logistic\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T01_help_example/empiric_mle" =
    "titecrm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 1, 0, 0, 0, 0, 0), level = c(3, 3, 3, 4, 4, 3, 2, 2, 2, 3), n = 10L, followup = c(178, 181, 168, 181, 24, 181, 179, 102, 42, 3), obswin = 180, scheme = \"linear\", conf.level = 0.9, method = \"mle\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T01_help_example/empiric_bayes_adaptive" =
    "titecrm(prior = <sk6>, target = 0.2, tox = c(0, 0, 1, 0, 1, 0, 0, 0, 0, 0), level = c(3, 3, 3, 4, 4, 3, 2, 2, 2, 3), n = 10L, followup = c(178, 181, 168, 181, 24, 181, 179, 102, 42, 3), obswin = 180, scheme = \"adaptive\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T02_partial_followup_9pts/empiric_bayes" =
    "titecrm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 1, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, followup = c(28, 28, 28, 28, 10, 20, 14, 7, 2), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T02_partial_followup_9pts/logistic_bayes" =
    "titecrm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 1, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, followup = c(28, 28, 28, 28, 10, 20, 14, 7, 2), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"logistic\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T02_partial_followup_9pts/empiric_mle" =
    "titecrm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 1, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, followup = c(28, 28, 28, 28, 10, 20, 14, 7, 2), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"mle\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T02_partial_followup_9pts/empiric_bayes_adaptive" =
    "titecrm(prior = <sk5>, target = 0.25, tox = c(0, 0, 0, 0, 1, 0, 0, 0, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3), n = 9L, followup = c(28, 28, 28, 28, 10, 20, 14, 7, 2), obswin = 28, scheme = \"adaptive\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T03_partial_followup_12pts_target030/empiric_bayes" =
    "titecrm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, followup = c(28, 28, 28, 28, 28, 28, 5, 25, 21, 12, 3, 1), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T03_partial_followup_12pts_target030/logistic_bayes" =
    "titecrm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, followup = c(28, 28, 28, 28, 28, 28, 5, 25, 21, 12, 3, 1), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"bayes\", model = \"logistic\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T03_partial_followup_12pts_target030/empiric_mle" =
    "titecrm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, followup = c(28, 28, 28, 28, 28, 28, 5, 25, 21, 12, 3, 1), obswin = 28, scheme = \"linear\", conf.level = 0.9, method = \"mle\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)",
  "T03_partial_followup_12pts_target030/empiric_bayes_adaptive" =
    "titecrm(prior = <sk6b>, target = 0.3, tox = c(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0), level = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4), n = 12L, followup = c(28, 28, 28, 28, 28, 28, 5, 25, 21, 12, 3, 1), obswin = 28, scheme = \"adaptive\", conf.level = 0.9, method = \"bayes\", model = \"empiric\", var.est = TRUE, scale = 1.15758369027902, intcpt = 3)"
)

datasets <- list()
for (key in names(titecrm_calls)) {
  parts <- strsplit(key, "/")[[1]]
  fit <- eval(parse(text = with_skeletons(titecrm_calls[[key]])))
  datasets[[parts[1]]]$fits[[parts[2]]] <- c(list(call = titecrm_calls[[key]], weights = fit$weights), crm_fields(fit))
}
write_reference(list(description = "dfcrm::titecrm() posteriors", skeletons = skeletons,
                     provenance = provenance("make_reference.R", "dfcrm"), datasets = datasets),
                "titecrm.json")

# ---- crmsim() / titesim(): operating characteristics (seed = 1009, the package default), timed
args <- commandArgs(trailingOnly = TRUE)
repeats <- if (length(args) >= 1) as.integer(args[1]) else 3L
nsim <- if (length(args) >= 2) as.integer(args[2]) else 2000L
crmsim_calls <- c(
  "C1_T25_K5_n24_cohort1" =
    "crmsim(PI = c(0.05, 0.12, 0.25, 0.4, 0.55), prior = <sk5>, target = 0.25, n = 24, x0 = 1, nsim = 2000, mcohort = 1, restrict = TRUE, count = FALSE, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)",
  "C2_T25_K5_n24_cohort3" =
    "crmsim(PI = c(0.05, 0.12, 0.25, 0.4, 0.55), prior = <sk5>, target = 0.25, n = 24, x0 = 1, nsim = 2000, mcohort = 3, restrict = TRUE, count = FALSE, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)",
  "C3_T30_K6_n30_cohort1" =
    "crmsim(PI = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), prior = <sk6b>, target = 0.3, n = 30, x0 = 1, nsim = 2000, mcohort = 1, restrict = TRUE, count = FALSE, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)",
  "C4_T30_K6_n30_cohort3" =
    "crmsim(PI = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), prior = <sk6b>, target = 0.3, n = 30, x0 = 1, nsim = 2000, mcohort = 3, restrict = TRUE, count = FALSE, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)",
  "C5_T30_K6_n30_cohort3_logistic" =
    "crmsim(PI = c(0.05, 0.12, 0.3, 0.45, 0.6, 0.72), prior = <sk6b>, target = 0.3, n = 30, x0 = 1, nsim = 2000, mcohort = 3, restrict = TRUE, count = FALSE, method = \"bayes\", model = \"logistic\", intcpt = 3, scale = 1.15758369027902, seed = 1009)",
  "C6_help_example_twostage_mle_cohort3" =
    "crmsim(PI = c(0.1, 0.2, 0.4, 0.5, 0.6, 0.65), prior = <sk6>, target = 0.2, n = 24, x0 = c(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6), nsim = 2000, mcohort = 3, restrict = TRUE, count = FALSE, method = \"mle\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)"
)
titesim_calls <- c(
  "TS1" =
    "titesim(PI = c(0.05, 0.12, 0.25, 0.4, 0.55), prior = <sk5>, target = 0.25, n = 24, x0 = 1, nsim = 2000, restrict = TRUE, obswin = 28, tgrp = 28, rate = 2, accrual = \"fixed\", surv = \"uniform\", scheme = \"linear\", count = FALSE, method = \"bayes\", model = \"empiric\", intcpt = 3, scale = 1.15758369027902, seed = 1009)"
)

simulate <- function(calls) {
  out <- list()
  for (id in names(calls)) {
    cl <- sub("nsim = 2000", paste0("nsim = ", nsim), with_skeletons(calls[[id]]), fixed = TRUE)
    times <- numeric(0); res <- NULL
    for (r in seq_len(repeats)) {
      tm <- system.time(res_r <- eval(parse(text = cl)))
      if (!is.null(res)) stopifnot(identical(res$MTD, res_r$MTD))
      res <- res_r; times <- c(times, tm[["elapsed"]])
    }
    out[[id]] <- list(id = id, call = calls[[id]],
                      timing = list(n_repeats = repeats, elapsed_s = times, median_elapsed_s = median(times),
                                    min_elapsed_s = min(times)),
                      result = list(MTD_selection_fraction = res$MTD, level_mean_patients = res$level,
                                    tox_mean_dlts = res$tox, design = res$design, msg = res$msg,
                                    final_est_mean = mean(res$final.est), final_est_sd = sd(res$final.est)))
  }
  out
}
write_reference(list(description = "dfcrm::crmsim() operating characteristics", skeletons = skeletons,
                     provenance = provenance("make_reference.R", "dfcrm"), scenarios = simulate(crmsim_calls)),
                "crmsim.json")
write_reference(list(description = "dfcrm::titesim() operating characteristics", skeletons = skeletons,
                     provenance = provenance("make_reference.R", "dfcrm"), scenarios = simulate(titesim_calls)),
                "titesim.json")
