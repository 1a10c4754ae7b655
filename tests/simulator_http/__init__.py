"""Tests of the simulator's HTTP side and of the chaos proxy."""
