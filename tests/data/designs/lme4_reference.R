# The lme4 reference for tests/test_designs_lme4.py: fits
#   glmer(correct ~ condition + (1 | participant) + (1 | item), family = binomial)
# to each CSV of this folder, with lme4's defaults and with its inner (PIRLS) tolerance
# tightened to 1e-13, and writes lme4_reference.json.
#
#   Rscript tests/data/designs/lme4_reference.R [OUT.json]   (from the repository root)
#
# Produced here with R 4.2.2 and lme4 1.1-31 (Debian bookworm: apt-get install r-cran-lme4).
# The CSVs were drawn by analysis.designs.simulate.simulate_responses (the arguments are
# recorded in lme4_reference.json under "data").
suppressMessages({library(lme4); library(jsonlite)})
here <- "tests/data/designs"
args <- commandArgs(trailingOnly = TRUE)
target <- if (length(args)) args[1] else file.path(here, "lme4_reference.json")
fit_one <- function(d, control) {
  m <- glmer(correct ~ condition + (1 | participant) + (1 | item), data = d,
             family = binomial, control = control)
  list(
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    se_rx = as.list(suppressWarnings(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE)))))),
    sd = list(participant = unname(getME(m, "theta")["participant.(Intercept)"]),
              item = unname(getME(m, "theta")["item.(Intercept)"])),
    loglik = as.numeric(logLik(m)),
    messages = as.list(m@optinfo$conv$lme4$messages)
  )
}
out <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")), fits = list())
for (name in c("crossed", "subset", "boundary")) {
  d <- read.csv(file.path(here, paste0(name, ".csv")), stringsAsFactors = FALSE)
  d$condition <- relevel(factor(d$condition), ref = "none")
  d$participant <- factor(d$participant)
  d$item <- factor(d$item)
  out$fits[[name]] <- list(
    default = fit_one(d, glmerControl()),
    tight = fit_one(d, glmerControl(tolPwrss = 1e-13))
  )
}
out$data <- list(
  crossed = paste("simulate_responses(60, task='distinction', conditions=('none', 'normlime',",
                  "'lime'), odds_ratios={'normlime': 1.8, 'lime': 1.1}, baseline_accuracy=0.6,",
                  "participant_sd=0.8, item_sd=1.0, items=20, items_per_participant=20,",
                  "learn_items=0, attention_checks=0, p_inattentive=0, p_incomplete=0,",
                  "random_state=20260101), test rows"),
  subset = paste("simulate_responses(50, task='forward', conditions=('none', 'normlime'),",
                 "odds_ratios={'normlime': 1.6}, baseline_accuracy=0.45, participant_sd=1.0,",
                 "item_sd=1.2, items=80, items_per_participant=20, learn_items=0,",
                 "attention_checks=0, p_inattentive=0, p_incomplete=0,",
                 "random_state=20260103), test rows"),
  boundary = paste("simulate_responses(40, task='forward', conditions=('none', 'normlime'),",
                   "odds_ratios={'normlime': 1.6}, baseline_accuracy=0.45, participant_sd=0.5,",
                   "item_sd=1.2, items=80, items_per_participant=15, learn_items=0,",
                   "attention_checks=0, p_inattentive=0, p_incomplete=0,",
                   "random_state=20260102), test rows: the participant SD's estimate is 0")
)
write(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), target)
