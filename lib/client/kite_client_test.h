/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CLIENT_TEST_H
#define KITE_CLIENT_TEST_H

/*
 * libkite's hooks for tests and fuzzing; not part of kite/kite.h and not
 * exported by libkite.so.
 */
#include <stddef.h>
#include <stdint.h>

#include "kite/kite.h"

/*
 * Take p[0..n) as a reply datagram from the destination of in-flight
 * request datagram number `which` (modulo their count), its request id
 * written over the frame's. -1 if none is in flight.
 */
int kite__inject(struct kite_client *c, unsigned int which, const uint8_t *p, size_t n);

#endif
