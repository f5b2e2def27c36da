/* adminclient: `wardenctl keys` and `wardenctl usage`, clients of the daemon's admin API.
 *
 * Talks HTTP to the admin listener (docs/admin-api.md) with libcurl's easy interface: this is
 * a command-line tool, blocking is what it should do. The admin token comes from --token-file
 * or $MCPWARDEN_ADMIN_TOKEN, never from the command line (argv is visible to every local user).
 * Output is a table for people, or with --json the API's answer as it came.
 */
#ifndef WARDEN_ADMINCLIENT_H
#define WARDEN_ADMINCLIENT_H

/* argv[0] is the command ("keys" or "usage"); the rest its subcommand and options. Returns
 * the process exit status: 0 done, 1 the API refused or could not be reached, 2 usage. */
int adminclient_main(int argc, char **argv);

#endif
