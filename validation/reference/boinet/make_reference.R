## Reference values for escalade's gBOIN-ET (design/gboin_et.py) from the R package boinet 1.5.0.
##
## boinet imports shiny/gt/plotly (not installable here) and copula/mfp (not in Debian), so this script
## source()s only the R files gboinet() needs, from the CRAN source (github.com/cran/boinet, tag 1.5.0):
##   R/gboinet.R R/gridoptim.R R/obd.select.R R/utility.weighted.R R/utility.truncated.linear.R
##   R/utility.scoring.R
## with Iso (Debian r-cran-iso) for pava. mfp is used only by estpt.method = "fp.logistic" (not run here).
## copula is used only through normalCopula / mvdc / rMvdc; the stand-ins below do what copula 1.1-6 does
## (R/normalCopula.R: rnormalCopula = pnorm(rmvnorm(n, sigma = getSigma(copula))), with mvtnorm's rmvnorm;
## R/mvdc.R: rMvdc applies the margins' quantile functions to each column), consuming the same random
## numbers, so the simulated trials are those of the real package.
##
## Run from the repository root:  Rscript validation/reference/boinet/make_reference.R /path/to/boinet/R
## Writes validation/reference/boinet/gboinet.json; with GBOINET_SET=corr0, gboinet_corr0.json.
args <- commandArgs(trailingOnly = TRUE)
src <- if (length(args)) args[1] else "/tmp/gboin-boinet/R"
suppressPackageStartupMessages({library(Iso); library(mvtnorm); library(jsonlite)})

copula <- new.env()
copula$normalCopula <- function(param, dim = 2, dispstr = "ex") list(rho = param, dim = dim)
copula$mvdc <- function(copula, margins, paramMargins) list(list(copula = copula, margins = margins,
                                                               paramMargins = paramMargins))
copula$rMvdc <- function(n, mvdc) {
  d <- mvdc$copula$dim
  sigma <- matrix(mvdc$copula$rho, d, d); diag(sigma) <- 1
  u <- pnorm(mvtnorm::rmvnorm(n, sigma = sigma))
  x <- u
  for (i in 1:d) x[, i] <- do.call(paste0("q", mvdc$margins[i]), c(list(u[, i]), mvdc$paramMargins[[i]]))
  x
}
## gboinet() calls copula::normalCopula etc.; make `copula::` resolve to the stand-ins
for (f in c("gboinet.R", "gridoptim.R", "obd.select.R", "utility.weighted.R", "utility.truncated.linear.R",
            "utility.scoring.R")) {
  txt <- readLines(file.path(src, f))
  txt <- gsub("copula::", "copula$", txt, fixed = TRUE)
  eval(parse(text = txt))
}

## --- boundaries: gridoptim over a set of (phi, phi1, phi2, delta, delta1) --------------------------------
grid_cases <- list(
  list(phi = 0.60, phi1 = 0.06, phi2 = 0.84, delta = 0.80, delta1 = 0.48),   # gboinet help, example 1
  list(phi = 0.50, phi1 = 0.05, phi2 = 0.70, delta = 0.80, delta1 = 0.48),   # gboinet help, example 2
  list(phi = 0.30, phi1 = 0.03, phi2 = 0.42, delta = 0.60, delta1 = 0.36),   # boinet defaults at phi 0.3
  list(phi = 0.35, phi1 = 0.035, phi2 = 0.49, delta = 0.40, delta1 = 0.24),
  list(phi = 0.25, phi1 = 0.10, phi2 = 0.35, delta = 0.30, delta1 = 0.18),
  list(phi = 0.40, phi1 = 0.04, phi2 = 0.56, delta = 0.50, delta1 = 0.30))
grids <- lapply(grid_cases, function(g) {
  b <- do.call(gridoptim, g)
  c(g, list(lambda1 = b$lambda1, lambda2 = b$lambda2, eta1 = b$eta1,
            call = sprintf("gridoptim(phi=%s, phi1=%s, phi2=%s, delta=%s, delta1=%s)",
                           g$phi, g$phi1, g$phi2, g$delta, g$delta1)))
})

## --- operating characteristics: the gboinet help page's examples at 10,000 trials ------------------------
n_sim <- as.integer(Sys.getenv("GBOINET_NSIM", "10000"))
ex1 <- list(n.dose = 5, start.dose = 1, size.cohort = 4, n.cohort = 12,
  toxprob = rbind(c(0.85, 0.70, 0.50, 0.35, 0.20), c(0.12, 0.20, 0.25, 0.25, 0.20),
                  c(0.02, 0.08, 0.20, 0.30, 0.40), c(0.01, 0.02, 0.05, 0.10, 0.20)),
  effprob = rbind(c(0.70, 0.50, 0.30, 0.25, 0.30), c(0.25, 0.35, 0.40, 0.35, 0.35),
                  c(0.04, 0.12, 0.25, 0.30, 0.25), c(0.01, 0.03, 0.05, 0.10, 0.10)),
  sev.weight = c(0.0, 0.3, 1.0, 3.0), res.weight = c(0.0, 0.2, 1.5, 3.5),
  phi = 0.60, delta = 0.80, tau.T = 42, tau.E = 56, accrual = 7,
  estpt.method = "obs.prob", obd.method = "utility.weighted", w1 = 0.4, w2 = 1.2)
ex2 <- list(n.dose = 4, start.dose = 1, size.cohort = 6, n.cohort = 8,
  toxprob = rbind(c(0.75, 0.55, 0.35, 0.20), c(0.20, 0.30, 0.35, 0.30), c(0.04, 0.12, 0.25, 0.35),
                  c(0.01, 0.03, 0.05, 0.15)),
  effprob = rbind(c(0.60, 0.40, 0.25, 0.20), c(0.30, 0.35, 0.35, 0.30), c(0.08, 0.20, 0.30, 0.35),
                  c(0.02, 0.05, 0.10, 0.15)),
  sev.weight = c(0.0, 0.4, 1.2, 2.8), res.weight = c(0.0, 0.3, 1.8, 3.2),
  phi = 0.50, delta = 0.80, tau.T = 84, tau.E = 56, accrual = 14,
  estpt.method = "obs.prob", obd.method = "utility.truncated.linear")
## the same two scenarios under the default (max.effprob) and the scoring utility
ex3 <- modifyList(ex1, list(obd.method = "max.effprob"))
ex4 <- modifyList(ex2, list(obd.method = "utility.scoring"))
## and two scenarios where trials stop early: toxic from dose 3 (scenario 1's weights), and futile (scenario 2's)
ex5 <- modifyList(ex3, list(toxprob = rbind(c(0.50, 0.30, 0.15, 0.10, 0.05), c(0.20, 0.15, 0.10, 0.05, 0.05),
                                            c(0.15, 0.15, 0.10, 0.10, 0.05), c(0.15, 0.40, 0.65, 0.75, 0.85))))
ex6 <- modifyList(ex4, list(effprob = rbind(c(0.90, 0.90, 0.88, 0.88), c(0.08, 0.08, 0.09, 0.09),
                                            c(0.015, 0.015, 0.02, 0.02), c(0.005, 0.005, 0.01, 0.01))))
cases <- list(example1_utility_weighted = ex1, example2_utility_truncated_linear = ex2,
              example1_max_effprob = ex3, example2_utility_scoring = ex4,
              toxic_max_effprob = ex5, futile_utility_scoring = ex6)
## GBOINET_SET=corr0: the te.corr 0 variants (independent toxicity and efficacy), for the comparison through
## escalade's CAR-T engine, written to gboinet_corr0.json (default: te.corr 0.2 and gridoptim, gboinet.json)
set <- Sys.getenv("GBOINET_SET", "corr02")
if (set == "corr0") {
  cases <- lapply(cases, function(a) c(a, list(te.corr = 0)))
  names(cases) <- paste0(names(cases), "_corr0")
}
ocs <- lapply(names(cases), function(nm) {
  a <- cases[[nm]]
  rho <- if (is.null(a$te.corr)) 0.2 else a$te.corr
  t0 <- proc.time()[["elapsed"]]
  r <- do.call(gboinet, c(a, list(n.sim = n_sim, seed.sim = 100)))
  list(name = nm, args = lapply(a, function(v) if (is.matrix(v)) unname(split(v, row(v))) else v),
       te_corr = rho, gen_event_time = "weibull", n_sim = n_sim, seed_sim = 100,
       lambda1 = unname(r$lambda1), lambda2 = unname(r$lambda2), eta1 = unname(r$eta1),
       nETS = unname(r$nETS), nEES = unname(r$nEES),
       prop_select = unname(r$prop.select), prop_stop = unname(r$prop.stop), n_patient = unname(r$n.patient),
       elapsed_s = proc.time()[["elapsed"]] - t0,
       call = sprintf("gboinet(<args>, n.sim = %d, seed.sim = 100)  # te.corr %g, weibull event times", n_sim, rho))
})
out <- list(provenance = list(package = "boinet 1.5.0 (CRAN source, github.com/cran/boinet, R files sourced)",
                              R = R.version.string, Iso = as.character(packageVersion("Iso")),
                              mvtnorm = as.character(packageVersion("mvtnorm")),
                              copula = "stand-ins for normalCopula/mvdc/rMvdc equal to copula 1.1-6 (see script)",
                              script = "validation/reference/boinet/make_reference.R",
                              note = paste("prop_select, prop_stop are % of trials rounded to 0.1 as gboinet",
                                           "prints them; n_patient mean patients per dose rounded to 0.1")),
            gridoptim = grids, gboinet = ocs)
target <- if (set == "corr0") "validation/reference/boinet/gboinet_corr0.json" else
  "validation/reference/boinet/gboinet.json"
if (set == "corr0") out$gridoptim <- NULL
write(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), target)
cat("wrote", target, "\n")
