//! The run every command that loads a module stands on: the detectors
//! chosen and opened ([`detectors`]), then a session ([`session`]) that
//! loads the module inside their window, records where it sits, unloads it
//! and harvests what each detector saw; and the lab's run of its own
//! samples on them ([`lab`]), which `cycle`, `matrix` and doctor's canary
//! share.

pub mod detectors;
pub mod harvest;
pub mod lab;
pub mod run;
pub mod session;
