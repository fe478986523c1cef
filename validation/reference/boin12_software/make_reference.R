# Reference for escalade's BOIN12 "software" selection rule (tests/test_boin12_selection.py).
#
# Written for escalade (not copied): it restates, in R, the end-of-trial OBD selection of the
# BOIN12 authors' simulation code as distributed with the trialdesign.org application and
# ported in R packages that reproduce it (isotonic toxicity by PAVA on (y + 0.05)/(n + 0.1) with
# weights n + 0.1, plus 0.001 * dose index; efficacy from Iso::ufit umbrella fits of
# (y + 0.05)/(n + 0.1) with weights n + 0.5 for every mode, averaged with weights proportional to
# prod(dbinom(y, n, fit)), plus 0.01 * dose index; utility u11 * pE + u00 * (1 - pT); MTD
# = which.min(abs(pT - target)) over all doses; OBD = which.max of the utility over doses 1..MTD,
# with eliminated or untried doses set to -100).
# Run: Rscript make_reference.R  (R 4.x, Iso 0.0-18.1, jsonlite) -> ufit.json, select.json
library(Iso)
library(jsonlite)

# Iso::ufit with the mode at index i (1-based), called as the authors' code calls it
ufit_at <- function(y, w, i) {
  nd <- length(y)
  x <- if (i == 1) seq(nd, 1, by = -1) else c(1:(i - 1), seq(nd, i))
  ufit(y, lmode = i, x = x, w = w)[[2]]
}

software_select <- function(n, yt, ye, target, phi_e, u11, u00, c_t = 0.95, c_e = 0.9) {
  nd <- length(n)
  elim <- rep(0, nd)
  for (j in 1:nd) if (n[j] >= 3 && 1 - pbeta(target, yt[j] + 1, n[j] - yt[j] + 1) > c_t) { elim[j:nd] <- 1; break }
  for (j in 1:nd) if (n[j] >= 3 && pbeta(phi_e, ye[j] + 1, n[j] - ye[j] + 1) > c_e) elim[j] <- 1
  pT <- pava((yt + 0.05) / (n + 0.1), w = n + 0.1) + 0.001 * (1:nd)
  raw <- (ye + 0.05) / (n + 0.1)
  fits <- t(sapply(1:nd, function(i) ufit_at(raw, n + 0.5, i)))
  lik <- apply(fits, 1, function(f) prod(dbinom(ye, n, f)))
  pE <- as.vector(t(fits) %*% (lik / sum(lik))) + 0.01 * (1:nd)
  u <- u11 * pE + u00 * (1 - pT)
  u[elim == 1 | n == 0] <- -100
  mtd <- which.min(abs(pT - target))
  obd <- which.max(u[1:mtd])
  list(n = n, tox = yt, eff = ye, p_tox = pT, p_eff = pE, utility = u, mtd = mtd, obd = obd,
       any_ok = any(u[1:mtd] > -100))
}

set.seed(20261130)
ufit_cases <- lapply(1:100, function(k) {
  nd <- sample(2:6, 1)
  n <- sample(c(0, 3, 6, 9, 12), nd, replace = TRUE)
  ye <- sapply(n, function(m) rbinom(1, m, runif(1)))
  raw <- (ye + 0.05) / (n + 0.1)
  list(y = raw, w = n + 0.5, fits = t(sapply(1:nd, function(i) ufit_at(raw, n + 0.5, i))))
})
select_cases <- lapply(1:300, function(k) {
  nd <- sample(3:6, 1)
  m <- sample(1:nd, 1)  # treated doses 1..m, as in a trial started at dose 1
  n <- c(sample(c(3, 6, 9, 12), m, replace = TRUE), rep(0, nd - m))
  pt <- sort(runif(nd, 0, 0.7)); pe <- runif(nd, 0.05, 0.8)
  yt <- rbinom(nd, n, pt); ye <- rbinom(nd, n, pe)
  software_select(n, yt, ye, target = 0.35, phi_e = 0.25, u11 = 60, u00 = 40)
})
meta <- list(R = R.version.string, Iso = as.character(packageVersion("Iso")),
             call = "software_select(n, yt, ye, target = 0.35, phi_e = 0.25, u11 = 60, u00 = 40)")
writeLines(toJSON(list(meta = meta, cases = ufit_cases), digits = NA, auto_unbox = TRUE), "ufit.json")
writeLines(toJSON(list(meta = meta, cases = select_cases), digits = NA, auto_unbox = TRUE), "select.json")
