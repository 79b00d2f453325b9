#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# An exercise for `leaklab check` of the example driver, run once a cycle
# while it is loaded: one leak a run (conditional_free's leaky twin) and
# one fixed twin that must leak nothing.
echo conditional_free > /sys/kernel/debug/leaky_driver/trigger
echo error_path > /sys/kernel/debug/leaky_driver/fixed
