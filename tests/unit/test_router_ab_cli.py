"""`nomadml router ab` refuses a split it cannot read before it asks Nomad anything:
one line naming the option (exit 2). The address is a closed port: a call to Nomad
would be another error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from nomadml.cli.main import main


@pytest.mark.parametrize(
    ("split", "said"),
    [
        (",", "--split ',': no arms; e.g. 1.1.0=50,1.2.0=50 or 1=50,2=50"),
        (" , ", "--split ' , ': no arms; e.g. 1.1.0=50,1.2.0=50 or 1=50,2=50"),
        ("1=50,1.1.0=50", "--split 1=50,1.1.0=50: the arms are either versions of one major"),
        ("1=abc", "--split '1=abc': expected MAJOR=PERCENT such as 1=50"),
    ],
)
def test_a_split_it_cannot_read_is_one_line(split: str, said: str) -> None:
    run = CliRunner().invoke(
        main,
        [
            *("--address", "http://127.0.0.1:9", "router", "ab", "iris"),
            *("--split", split, "--sticky-header", "X-User"),
        ],
    )
    assert run.exit_code == 2, run.output
    assert run.output.count("\n") == 1 and run.output.startswith(f"nomadml: error: {said}"), (
        run.output
    )
