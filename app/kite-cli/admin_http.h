/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CLI_ADMIN_HTTP_H
#define KITE_CLI_ADMIN_HTTP_H

/* kite-cli's commands for a node's admin endpoint (admin_http.c). */

/* The exit codes kite_cli.c documents. */
enum {
	KITE_CLI_EXIT_OK = 0,
	KITE_CLI_EXIT_USAGE = 2,
	KITE_CLI_EXIT_NET = 3,
	KITE_CLI_EXIT_SERVER = 4,
};

/* metrics [URL] [--token-file F] [--match TEXT]; argv: what follows the command name. */
int kite_cli_metrics(const char *prog, unsigned int timeout_ms, int argc, char **argv);

/* scrape-config [URL...] [--token-file F] [--job NAME] [--interval DURATION] */
int kite_cli_scrape_config(const char *prog, unsigned int timeout_ms, int argc, char **argv);

#endif /* KITE_CLI_ADMIN_HTTP_H */
