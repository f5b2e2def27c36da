/* main: flags, start-up order, signals, shutdown. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "mcpwarden: not yet\n");
	return 1;
}
