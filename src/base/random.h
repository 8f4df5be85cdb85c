/*
 * random.h - identifiers from the kernel's CSPRNG (getrandom), never from rand().
 */
#pragma once

#include <stddef.h>

#define UUID_STR_LEN 37 /* 36 characters and the NUL */

/* A random (version 4) UUID in its canonical lower-case form. Returns 0 or -errno. */
int uuid_v4(char ret[UUID_STR_LEN]);

int random_bytes(void *buf, size_t len);
