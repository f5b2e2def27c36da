/* hex: the value of one hexadecimal digit, -1 when c is not one. */
#ifndef WARDEN_HEX_H
#define WARDEN_HEX_H

static inline int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
