/* commands.h: the subcommands of the `spynco` program.
 *
 * Each takes the arguments after its name (argv[0] is the subcommand) and
 * returns the process exit status: 0 on success, 1 on failure (message on
 * stderr naming the file and what to do), 2 on a usage error. */
#ifndef SPYNCO_COMMANDS_H
#define SPYNCO_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_colorize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
