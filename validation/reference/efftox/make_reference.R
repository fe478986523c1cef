# EffTox reference outputs (validation/reference/efftox/): trialr's Stan model, long runs
#
# RECONSTRUCTED SCRIPT. The JSON files in this folder were produced on 2026-11-24 by the original
# generator scripts (scripts/efftox_reference.R), which are not part of this repository. This script was written
# afterwards from the calls those scripts recorded (every "call" string below is copied verbatim from
# the JSON files; the skeletons and settings from this folder's README.md), to document how the
# numbers arise and to let anyone regenerate them. It has NOT been run in this repository (no R was
# available where it was written); expect the package outputs listed below to match the committed
# JSON, and the provenance blocks, timings and the fields marked "not regenerated" to differ.
#
# Provenance of the committed JSON: R 4.2.2 (x86_64-pc-linux-gnu), rstan 2.21.7 / StanHeaders 2.21.0-7, Stan program trialr inst/stan/EffTox.stan at commit 66c1eb31afaeb23c5c87a670e894e839805a7c7e (trialr 0.1.5); 2-core AMD EPYC;
# RNG Mersenne-Twister / Inversion / Rejection (R's defaults).
#
# Run from this folder:  Rscript make_reference.R     (needs rstan 2.21 and a copy of trialr's EffTox.stan at that commit (set EFFTOX_STAN), jsonlite)
# Output: efftox_design_and_utility.json, efftox_posteriors_long.json, efftox_posteriors_importance_sampling.json, efftox_stan_timing.json (written next to this script; compare with git diff).
#
# The decision code is re-implemented here following trialr's efftox_solve_p, efftox_utility,
# efftox_process and efftox_parse_outcomes (trialr itself was not installed: its HEAD needs rstan >= 2.26).
# Not regenerated: "decision_robustness" and the clintrials attempt (a separate Python driver).
# The Stan data names below follow trialr's efftox_parameters_demo() and the data block of EffTox.stan
# at that commit; check them against the .stan file before running. Posterior probabilities are computed
# here from the parameter draws (alpha ... psi), so no generated-quantity names are assumed.

suppressPackageStartupMessages({ library(rstan); library(jsonlite) })

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

# ---- design: trialr efftox_parameters_demo() (Thall et al. 2014, prostate cancer example)
design <- list(real_doses = c(1, 2, 4, 6.6, 10), num_doses = 5L, efficacy_hurdle = 0.5, toxicity_hurdle = 0.3,
               p_e = 0.1, p_t = 0.1, eff0 = 0.5, tox1 = 0.65, eff_star = 0.7, tox_star = 0.25,
               priors = list(alpha_mean = -7.9593, alpha_sd = 3.5487, beta_mean = 1.5482, beta_sd = 3.5018,
                             gamma_mean = 0.7367, gamma_sd = 2.5423, zeta_mean = 3.4181, zeta_sd = 2.4406,
                             eta_mean = 0, eta_sd = 0.2, psi_mean = 0, psi_sd = 1))
x <- log(design$real_doses) - mean(log(design$real_doses))   # coded doses
design$coded_doses <- x
contour <- function(p) ((1 - design$eff_star) / (1 - design$eff0))^p + (design$tox_star / design$tox1)^p - 1
p_trialr <- uniroot(contour, c(0, 100))$root                  # efftox_solve_p: default tol = eps^0.25
p_exact <- uniroot(contour, c(0, 100), tol = 1e-15)$root
utility <- function(e, t, p) 1 - (((1 - e) / (1 - design$eff0))^p + (t / design$tox1)^p)^(1 / p)
grid <- expand.grid(prob_tox = seq(0, 1, 0.1), prob_eff = seq(0, 1, 0.1))[, 2:1]
points <- data.frame(prob_eff = c(0.5, 1, 0.7, 0.6, 0.7, 0.8, 0.2, 0.4, 0.6, 0.8, 0.9),
                     prob_tox = c(0, 0.65, 0.25, 0.1, 0.2, 0.3, 0.05, 0.1, 0.15, 0.2, 0.4))
with_u <- function(d) transform(d, utility_trialr_p = utility(prob_eff, prob_tox, p_trialr),
                                utility_exact_p = utility(prob_eff, prob_tox, p_exact))
write_reference(list(source = "trialr efftox_parameters_demo()/stan_efftox_demo() = Thall, Herrick, Nguyen, Venier & Norris (2014)",
                     design = design, p_trialr_uniroot_default_tol = p_trialr, p_exact = p_exact,
                     utility_formula = "u(piE,piT) = 1 - ( ((1-piE)/(1-eff0))^p + (piT/tox1)^p )^(1/p)",
                     utility_grid = with_u(grid), utility_points = with_u(points),
                     versions = list(R = R.version.string)),
                "efftox_design_and_utility.json")

# ---- data sets (trialr outcome strings: dose number, then N / E / T / B per patient)
datasets <- c(D0_empty = "", D1_vignette = "1NNE 2EEB", D2_stan_efftox_example = "1N 2E 3B",
              D3_brief = "1NNN 2ENN 3ETE", D5_none_acceptable = "1TTT 1TTT",
              D6_all_effective = "1EEN 2EEE 3EEE 4EEE 5EEE")
parse_outcomes <- function(s) {                               # as trialr::efftox_parse_outcomes
  doses <- integer(0); eff <- integer(0); tox <- integer(0)
  for (cohort in strsplit(trimws(s), " +")[[1]]) {
    if (cohort == "") next
    d <- as.integer(sub("^([0-9]+).*", "\\1", cohort)); o <- strsplit(sub("^[0-9]+", "", cohort), "")[[1]]
    doses <- c(doses, rep(d, length(o))); eff <- c(eff, as.integer(o %in% c("E", "B")))
    tox <- c(tox, as.integer(o %in% c("T", "B")))
  }
  list(doses = doses, eff = eff, tox = tox, num_patients = length(doses))
}
stan_data <- function(outcomes) {
  o <- parse_outcomes(outcomes)
  c(design$priors, list(num_doses = design$num_doses, real_doses = design$real_doses,
                        efficacy_hurdle = design$efficacy_hurdle, toxicity_hurdle = design$toxicity_hurdle,
                        p = p_trialr, eff0 = design$eff0, tox1 = design$tox1,
                        num_patients = o$num_patients, eff = array(o$eff), tox = array(o$tox),
                        doses = array(o$doses)))
}
probabilities <- function(draws) {                            # draws: matrix with columns alpha ... psi
  list(eff = plogis(draws[, "gamma"] + outer(draws[, "zeta"], x) + outer(draws[, "eta"], x^2)),
       tox = plogis(draws[, "alpha"] + outer(draws[, "beta"], x)))
}
decide <- function(outcomes, prob_acc_eff, prob_acc_tox, plug) {    # efftox_process
  o <- parse_outcomes(outcomes)
  if (o$num_patients == 0) return(list(acceptable = rep(NA, 5), recommended = NA_integer_))
  in_range <- seq_len(5) >= min(o$doses) - 1 & seq_len(5) <= max(o$doses) + 1
  acc <- prob_acc_eff > design$p_e & prob_acc_tox > design$p_t & in_range
  list(in_range = in_range, acceptable = acc, recommended = if (any(acc)) which(acc)[which.max(plug[acc])] else NA_integer_)
}

model <- stan_model(file = Sys.getenv("EFFTOX_STAN", "EffTox.stan"), boost_lib = "/usr/include")

# ---- long runs: 4 chains x 12,000 iterations (2,000 warm-up), seed 123
long <- list()
for (id in names(datasets)) {
  t0 <- Sys.time()
  fit <- sampling(model, data = stan_data(datasets[[id]]), chains = 4, iter = 12000, warmup = 2000, seed = 123,
                  cores = 2, refresh = 0)
  wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  arr <- as.array(fit, pars = c("alpha", "beta", "gamma", "zeta", "eta", "psi"))   # iterations x chains x 6
  draws <- apply(arr, 3, c)
  pr <- probabilities(draws)
  u_draws <- utility(pr$eff, pr$tox, p_trialr)
  chain_of <- rep(seq_len(dim(arr)[2]), each = dim(arr)[1])
  as_sims <- function(m) array(m, dim = c(dim(arr)[1], dim(arr)[2], ncol(m)))
  se_mean <- function(m) { s <- suppressWarnings(monitor(as_sims(m), warmup = 0, print = FALSE)[, "se_mean"]); s[!is.finite(s) | s == 0] <- NA; unname(s) }
  acc_e <- (pr$eff > design$efficacy_hurdle) * 1; acc_t <- (pr$tox < design$toxicity_hurdle) * 1
  obd <- t(apply(u_draws, 1, function(u) as.numeric(seq_along(u) == which.max(u))))
  plug <- utility(colMeans(pr$eff), colMeans(pr$tox), p_trialr)
  # batch means (10 batches per chain) for the plug-in utility
  batch <- (chain_of - 1) * 10 + ceiling(rep(seq_len(dim(arr)[1]), dim(arr)[2]) / (dim(arr)[1] / 10))
  bm <- sapply(split(seq_len(nrow(draws)), batch), function(i) utility(colMeans(pr$eff[i, ]), colMeans(pr$tox[i, ]), p_trialr))
  dec <- decide(datasets[[id]], colMeans(acc_e), colMeans(acc_t), plug)
  o <- parse_outcomes(datasets[[id]])
  sp <- get_sampler_params(fit, inc_warmup = FALSE)
  summ <- summary(fit, pars = c("alpha", "beta", "gamma", "zeta", "eta", "psi"))$summary
  long[[id]] <- list(
    outcomes = datasets[[id]], num_patients = o$num_patients,
    per_dose = list(dose = 1:5, real_dose = design$real_doses, coded_dose = x,
                    n = tabulate(o$doses, 5), n_eff_events = tabulate(o$doses[o$eff == 1], 5),
                    n_tox_events = tabulate(o$doses[o$tox == 1], 5),
                    mean_prob_eff = colMeans(pr$eff), mcse_prob_eff = se_mean(pr$eff),
                    mean_prob_tox = colMeans(pr$tox), mcse_prob_tox = se_mean(pr$tox),
                    median_prob_eff = apply(pr$eff, 2, median), median_prob_tox = apply(pr$tox, 2, median),
                    prob_acc_eff = colMeans(acc_e), mcse_prob_acc_eff = se_mean(acc_e),
                    prob_acc_tox = colMeans(acc_t), mcse_prob_acc_tox = se_mean(acc_t),
                    plugin_utility = plug, mcse_plugin_utility = apply(bm, 1, sd) / sqrt(ncol(bm)),
                    post_mean_utility = colMeans(u_draws), mcse_post_mean_utility = se_mean(u_draws),
                    prob_obd = colMeans(obd), mcse_prob_obd = se_mean(obd),
                    in_range = dec$in_range, acceptable = dec$acceptable),
    recommended_dose = dec$recommended,
    recommended_dose_if_post_mean_utility = decide(datasets[[id]], colMeans(acc_e), colMeans(acc_t), colMeans(u_draws))$recommended,
    parameters = list(names = rownames(summ), mean = unname(summ[, "mean"]), se_mean = unname(summ[, "se_mean"]),
                      sd = unname(summ[, "sd"]), Rhat = unname(summ[, "Rhat"]), n_eff = unname(summ[, "n_eff"])),
    diagnostics = list(divergent_transitions = sum(sapply(sp, function(s) sum(s[, "divergent__"]))),
                       max_Rhat = max(summ[, "Rhat"]), min_n_eff = min(summ[, "n_eff"]),
                       chain_elapsed_seconds = unname(get_elapsed_time(fit))),
    wall_seconds = wall)
}
versions <- list(R = R.version.string, rstan = as.character(packageVersion("rstan")),
                 StanHeaders = as.character(packageVersion("StanHeaders")),
                 stan_model_source = "brockk/trialr inst/stan/EffTox.stan @ 66c1eb31afaeb23c5c87a670e894e839805a7c7e")
write_reference(list(mcmc = list(chains = 4, iter = 12000, warmup = 2000, seed = 123, cores = 2,
                                 post_warmup_draws_total = 40000,
                                 sampler = "NUTS (rstan defaults: adapt_delta=0.8, max_treedepth=10)"),
                     p_used = p_trialr, datasets = long, versions = versions),
                "efftox_posteriors_long.json")

# ---- MCMC-free check: self-normalised importance sampling from the prior, 4e6 draws in 20 chunks
set.seed(20240601)
loglik <- function(draws, o) {
  if (o$num_patients == 0) return(rep(0, nrow(draws)))
  pr <- probabilities(draws); k <- tanh(draws[, "psi"] / 2)     # (e^psi - 1) / (e^psi + 1)
  ll <- 0
  for (i in seq_len(o$num_patients)) {
    e <- pr$eff[, o$doses[i]]; t <- pr$tox[, o$doses[i]]; a <- o$eff[i]; b <- o$tox[i]
    ll <- ll + log(e^a * (1 - e)^(1 - a) * t^b * (1 - t)^(1 - b) + (-1)^(a + b) * e * (1 - e) * t * (1 - t) * k)
  }
  ll
}
is_out <- list()
for (id in names(datasets)) {
  o <- parse_outcomes(datasets[[id]]); t0 <- Sys.time(); est <- list()
  for (chunk in 1:20) {
    pp <- design$priors
    draws <- cbind(alpha = rnorm(2e5, pp$alpha_mean, pp$alpha_sd), beta = rnorm(2e5, pp$beta_mean, pp$beta_sd),
                   gamma = rnorm(2e5, pp$gamma_mean, pp$gamma_sd), zeta = rnorm(2e5, pp$zeta_mean, pp$zeta_sd),
                   eta = rnorm(2e5, pp$eta_mean, pp$eta_sd), psi = rnorm(2e5, pp$psi_mean, pp$psi_sd))
    lw <- loglik(draws, o); w <- exp(lw - max(lw)); w <- w / sum(w)
    pr <- probabilities(draws); u <- utility(pr$eff, pr$tox, p_trialr)
    est[[chunk]] <- list(eff = colSums(w * pr$eff), tox = colSums(w * pr$tox),
                         acc_e = colSums(w * (pr$eff > design$efficacy_hurdle)),
                         acc_t = colSums(w * (pr$tox < design$toxicity_hurdle)), u = colSums(w * u),
                         ess = 1 / sum(w^2))
  }
  m <- function(f) rowMeans(sapply(est, `[[`, f)); se <- function(f) apply(sapply(est, `[[`, f), 1, sd) / sqrt(20)
  plug <- utility(m("eff"), m("tox"), p_trialr)
  plug_chunks <- sapply(est, function(z) utility(z$eff, z$tox, p_trialr))
  dec <- decide(datasets[[id]], m("acc_e"), m("acc_t"), plug)
  is_out[[id]] <- list(outcomes = datasets[[id]], n_draws = 4e6, n_chunks = 20, seed = 20240601,
                       importance_ess = sum(sapply(est, `[[`, "ess")),
                       mean_prob_eff = m("eff"), se_prob_eff = se("eff"), mean_prob_tox = m("tox"), se_prob_tox = se("tox"),
                       prob_acc_eff = m("acc_e"), se_prob_acc_eff = se("acc_e"), prob_acc_tox = m("acc_t"),
                       se_prob_acc_tox = se("acc_t"), post_mean_utility = m("u"), se_post_mean_utility = se("u"),
                       plugin_utility = plug, se_plugin_utility = apply(plug_chunks, 1, sd) / sqrt(20),
                       acceptable = dec$acceptable, recommended_dose = dec$recommended,
                       seconds = as.numeric(difftime(Sys.time(), t0, units = "secs")))
}
write_reference(list(method = "Self-normalised importance sampling with the prior as proposal; 4e6 prior draws in 20 chunks; SE = sd(chunk estimates)/sqrt(20). Same likelihood as the Stan model. Independent of Stan/MCMC.",
                     p_used = p_trialr, datasets = is_out, versions = list(R = R.version.string)),
                "efftox_posteriors_importance_sampling.json")

# ---- wall-clock per rstan::sampling() call on the compiled model (seeds 1001-1003), 3 settings
settings <- list(list(label = "4 chains x 2000 iter (1000 warmup + 1000 draws), cores=1 [rstan/trialr default]", chains = 4, iter = 2000, warmup = 1000, cores = 1),
                 list(label = "4 chains x 1000 iter (500 warmup + 500 draws), cores=1", chains = 4, iter = 1000, warmup = 500, cores = 1),
                 list(label = "4 chains x 2000 iter (1000 warmup + 1000 draws), cores=2 (parallel)", chains = 4, iter = 2000, warmup = 1000, cores = 2))
timings <- lapply(settings, function(s) {
  per <- lapply(datasets, function(outcomes) {
    secs <- sapply(1001:1003, function(seed) system.time(sampling(model, data = stan_data(outcomes), chains = s$chains,
                                                                   iter = s$iter, warmup = s$warmup, cores = s$cores,
                                                                   seed = seed, refresh = 0))[["elapsed"]])
    list(wall_seconds = secs, median_wall_seconds = median(secs))
  })
  all <- unlist(lapply(per, `[[`, "wall_seconds"))
  list(setting = s, reps_per_dataset = 3L, per_dataset = per, overall_median_wall_seconds = median(all),
       overall_mean_wall_seconds = mean(all))
})
write_reference(list(machine = list(cores = parallel::detectCores(), uname = unname(Sys.info()[c("sysname", "release", "machine")])),
                     note = "one rstan::sampling() call on the compiled model, refresh = 0; compilation excluded",
                     timings = timings, versions = versions),
                "efftox_stan_timing.json")
