"""Our XLA CPU options (backend.xla_flags): added where measured, never over the user's."""

from videoprism_keras.backend import xla_flags
from videoprism_keras.constants import XLA_CPU_FLAGS

OURS = " ".join(XLA_CPU_FLAGS)


def test_the_options_are_added_on_x86_linux_after_the_users_own():
    assert xla_flags(None, None, "x86_64", "Linux") == OURS
    assert xla_flags("", None, "AMD64", "Linux") == OURS
    kept = "--xla_force_host_platform_device_count=2"
    assert xla_flags(kept, None, "x86_64", "Linux") == f"{kept} {OURS}"


def test_the_users_choice_opt_out_and_other_platforms_leave_xla_flags_alone():
    assert xla_flags("--xla_cpu_use_onednn=false", None, "x86_64", "Linux") is None
    assert xla_flags("--xla_cpu_experimental_ynn_fusion_type=dot", None, "x86_64", "Linux") is None
    assert xla_flags(None, "0", "x86_64", "Linux") is None
    assert xla_flags(None, None, "arm64", "Darwin") is None
    assert xla_flags(None, None, "aarch64", "Linux") is None
