"""SwitchFiles: what FreeSWITCH says it can play, asked once per file version (api file_exists)."""

import os

import pytest

from daemon.esl import ESLError
from daemon.playable import SwitchFiles


class Switch:
    """Answers `api file_exists <path>` like mod_commands, from a set of paths it can see; counts asks."""

    def __init__(self, sees=(), answer=None):
        self.sees, self.answer, self.asked = set(sees), answer, []

    def api(self, command):
        verb, _, path = command.partition(' ')
        assert verb == 'file_exists'
        self.asked.append(path)
        return self.answer if self.answer is not None else ('true' if path in self.sees else 'false')


@pytest.fixture
def files(tmp_path):
    paths = []
    for name in ('a.wav', 'b.wav'):
        (tmp_path / name).write_bytes(b'RIFF')
        paths.append(str(tmp_path / name))
    return paths


def test_a_file_the_switch_sees_is_asked_about_once(files):
    switch, checker = Switch(sees=files), SwitchFiles()
    assert checker.unplayable(switch, files) == []
    assert checker.unplayable(switch, files) == []
    assert switch.asked == files


def test_a_file_the_switch_cannot_see_is_named_and_asked_again(files):
    switch, checker = Switch(sees=files[:1]), SwitchFiles()
    assert checker.unplayable(switch, files) == files[1:]
    switch.sees.add(files[1])  # e.g. the folder's permission fixed: nothing of the file changed
    assert checker.unplayable(switch, files) == []
    assert switch.asked == files + files[1:]


def test_a_changed_file_is_asked_about_again(files):
    switch, checker = Switch(sees=files), SwitchFiles()
    checker.unplayable(switch, files)
    os.utime(files[0], ns=(1, 1))
    checker.unplayable(switch, files)
    assert switch.asked == files + files[:1]


def test_a_file_missing_here_is_not_asked_about(files, tmp_path):
    switch = Switch(sees=files)
    assert SwitchFiles().unplayable(switch, [str(tmp_path / 'nope.wav')]) == [str(tmp_path / 'nope.wav')]
    assert switch.asked == []


def test_an_answer_that_is_not_true_or_false_is_an_error(files):
    with pytest.raises(ESLError, match='unexpected answer'):
        SwitchFiles().unplayable(Switch(answer='-ERR file_exists Command not found!\n'), files)
