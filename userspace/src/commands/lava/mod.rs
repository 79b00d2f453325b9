// SPDX-License-Identifier: GPL-2.0
//! `leaklab lava`: leaklab as a LAVA test. `job` writes a ready job from the
//! current build (QEMU, or an rk3588-rock-5b board), `results` is the gate
//! on a job's log, and `cases` turns a leaklab result into the lines the
//! project's LAVA test definition (`lava/leaklab.yaml`) reports.

pub mod cases;
pub mod job;
pub mod results;
