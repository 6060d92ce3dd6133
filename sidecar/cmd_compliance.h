/*
 * The compliance commands of the command line (issue 11): `pseudonym`,
 * `verify-audit`, and the helpers they share with main.c. Each command takes
 * argv from its own name on and returns the exit status: 0 success, 1
 * failure (for verify-audit: the chain is not whole), 2 usage or
 * configuration error.
 */
#ifndef LOGVEIL_SIDECAR_CMD_COMPLIANCE_H
#define LOGVEIL_SIDECAR_CMD_COMPLIANCE_H

#include <stdbool.h>

#include "logveil/conf.h"

int lv_cmd_pseudonym(int argc, char **argv);
int lv_cmd_verify_audit(int argc, char **argv);
/* `filter --explain` (explain true) or `filter --report` under `conf`, its
 * first input's format framing stdin. */
int lv_cmd_explain(const struct lv_conf *conf, bool explain);

/* Prints "logveil: what: arg" and the pointer to --help; returns 2. */
int lv_cmd_usage_error(const char *what, const char *arg);
/* Prints each load error and frees them; returns 2. */
int lv_cmd_print_errors(struct lv_conf_errors *errors);

#endif
