/* SPDX-License-Identifier: BSD-3-Clause */
#include "kited_log.h"

RTE_LOG_REGISTER(kited_logtype, kite.kited, INFO);
