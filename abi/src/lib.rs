//! The contract between the Enigma kernel and its user programs.
#![no_std]
