// SPDX-License-Identifier: GPL-2.0
//! The long runs' short forms (`make soak` and `make watch-soak` run the
//! long ones): the soak's 100 cycles and the watch's memory over its
//! rounds and its trend warning, each a minute or more. libtest starts the
//! tests by name, so these sit in a module that sorts early: they run
//! beside the shorter tests instead of ending `make test` alone (the
//! checks themselves are in [`crate::soak`] and [`crate::watch`]).

use crate::{
    soak::check_soak,
    watch::{check_watch_memory, check_watch_trend},
};

on_both_arches!(check_soak: soak_short_form_x86_64, soak_short_form_arm64);
on_both_arches!(check_watch_memory: watch_memory_stays_flat_over_its_rounds_x86_64, watch_memory_stays_flat_over_its_rounds_arm64);
on_both_arches!(check_watch_trend: watch_warns_of_growth_kmemleak_cannot_see_x86_64, watch_warns_of_growth_kmemleak_cannot_see_arm64);
