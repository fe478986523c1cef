# Exact dose-path probabilities (validation/reference/escalation/): R package escalation
#
# RECONSTRUCTED SCRIPT. The JSON files in this folder were produced on 2026-11-24 by the original
# generator scripts (scripts/escalation_dose_paths.R; the independent enumeration exact_paths_independent.R and make_reference_tables.py), which are not part of this repository. This script was written
# afterwards from the calls those scripts recorded (every "call" string below is copied verbatim from
# the JSON files; the skeletons and settings from this folder's README.md), to document how the
# numbers arise and to let anyone regenerate them. It has NOT been run in this repository (no R was
# available where it was written); expect the package outputs listed below to match the committed
# JSON, and the provenance blocks, timings and the fields marked "not regenerated" to differ.
#
# Provenance of the committed JSON: R 4.2.2 (x86_64-pc-linux-gnu), escalation 0.2.3 (commit add4557aba9c0a124f1f27b4cef7202078b7540c, installed with the Imports trialr, DiagrammeR and binom removed; see README), BOIN 2.7.2, dfcrm 0.2-2.1; 2-core AMD EPYC;
# RNG Mersenne-Twister / Inversion / Rejection (R's defaults).
#
# Run from this folder:  Rscript make_reference.R     (needs escalation 0.2.3, BOIN, dfcrm, dplyr, jsonlite)
# Output: escalation_exact_probs.json, escalation_nodes_boin.json, escalation_nodes_boin_stop12_select_mtd.json, escalation_nodes_crm_empiric.json (written next to this script; compare with git diff).
#
# Not regenerated: the independent enumeration (no escalation code) that the README's "own" rows come
# from, curves B and C, and the no-skip CRM variant (only curve A of the three designs below is committed).

suppressPackageStartupMessages({ library(escalation); library(dplyr); library(jsonlite) })

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

target <- 0.25
skeleton <- c(0.05, 0.12, 0.25, 0.40, 0.55)
cohort_sizes <- c(3, 3, 3, 3)
curves <- list(A_given = c(0.05, 0.10, 0.25, 0.40, 0.55))
designs <- list(
  boin = get_boin(num_doses = 5, target = target),
  boin_stop12_select_mtd = get_boin(num_doses = 5, target = target) %>% stop_at_n(n = 12) %>% select_boin_mtd(),
  crm_empiric = get_dfcrm(skeleton = skeleton, target = target))

results <- list()
for (name in names(designs)) {
  t0 <- Sys.time()
  paths <- get_dose_paths(designs[[name]], cohort_sizes = cohort_sizes, next_dose = 1)
  secs_paths <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  nodes <- as_tibble(paths)
  tree <- lapply(seq_len(nrow(nodes)), function(i) list(
    node = nodes$.node[i], parent = if (is.na(nodes$.parent[i])) "NA" else nodes$.parent[i],
    depth = nodes$.depth[i], outcomes = nodes$outcomes[i], next_dose = nodes$next_dose[i]))
  write_reference(tree, paste0("escalation_nodes_", name, ".json"))
  out <- list(num_nodes = nrow(nodes), num_terminal_paths = sum(!(nodes$.node %in% nodes$.parent)),
              seconds_get_dose_paths = secs_paths, curves = list())
  for (curve in names(curves)) {
    t0 <- Sys.time()
    probs <- calculate_probabilities(paths, true_prob_tox = curves[[curve]])
    secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
    rec <- prob_recommend(probs)
    # expected patients per dose; of the escalation calls used here this is the one whose return shape
    # was not recorded (check ?n_at_dose for dose_paths probabilities before relying on it)
    nat <- n_at_dose(probs)
    out$curves[[curve]] <- list(true_prob_tox = curves[[curve]], prob_recommend = as.list(rec),
                                expected_n_at_dose = as.list(nat), expected_num_patients = sum(nat),
                                prob_continue = 1 - unname(rec[["NoDose"]]), sum_prob = sum(rec),
                                seconds_calculate_probabilities = secs)
  }
  results[[name]] <- out
}
meta <- list(escalation_version = as.character(packageVersion("escalation")),
             escalation_commit = "add4557aba9c0a124f1f27b4cef7202078b7540c",
             BOIN_version = as.character(packageVersion("BOIN")), dfcrm_version = as.character(packageVersion("dfcrm")),
             R_version = R.version.string, target = target, num_doses = 5, skeleton = skeleton,
             cohort_sizes = cohort_sizes, start_dose = 1)
write_reference(list(meta = meta, results = results), "escalation_exact_probs.json")
