"""`autocall templates check|render` run as a real process: exit codes and what the operator reads."""

import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTOCALL = os.path.join(os.path.dirname(sys.executable), 'autocall')
SHIPPED = os.path.join(REPO, 'ivr_templates')
CUSTOMER = {'contract_number': 'HD123456', 'upcoming_amount': 5000000, 'upcoming_due_date': '13/07/2021'}

pytestmark = pytest.mark.timeout(60)


def autocall(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith('AUTOCALL_')}
    environment.update(env or {})
    return subprocess.run([AUTOCALL, *args], capture_output=True, text=True, env=environment, timeout=30)


@pytest.fixture
def templates_dir(tmp_path):
    for name in ('IVR-1', 'IVR-OVERDUE'):
        shutil.copy(os.path.join(SHIPPED, name + '.toml'), tmp_path)
    return tmp_path


def test_check_of_the_shipped_templates_says_ok_and_exits_0():
    result = autocall('templates', 'check')
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ['ok IVR-1', 'ok IVR-OVERDUE']


def test_check_prints_one_line_per_problem_and_exits_1(templates_dir):
    (templates_dir / 'BAD.toml').write_text(
        '[[step]]\nid = "a"\nplay = ["xin_chao", "nope"]\nnext = "b"\n', encoding='utf-8'
    )
    result = autocall('templates', 'check', env={'AUTOCALL_TEMPLATES': str(templates_dir)})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "BAD: step 'a': next step 'b' does not exist"
    assert lines[1].startswith("BAD: step 'a': missing sound file ") and lines[1].endswith('/nope.wav')
    assert lines[2:] == ['ok IVR-1', 'ok IVR-OVERDUE']


def test_check_of_named_templates_only(templates_dir):
    result = autocall('templates', 'check', 'IVR-1', '--templates', str(templates_dir))
    assert (result.returncode, result.stdout) == (0, 'ok IVR-1\n')


@pytest.mark.parametrize('name, message', [('IVR-9', 'IVR-9: no such file'), ('../IVR-1', 'not a template name')])
def test_check_of_a_missing_or_bad_name_exits_1(templates_dir, name, message):
    result = autocall('templates', 'check', name, '--templates', str(templates_dir))
    assert result.returncode == 1
    assert message in result.stdout


def test_check_of_an_empty_folder_exits_1(tmp_path):
    result = autocall('templates', 'check', '--templates', str(tmp_path))
    assert result.returncode == 1
    assert 'no templates' in result.stderr


def test_check_with_missing_sounds_names_the_files(tmp_path):
    result = autocall('templates', 'check', 'IVR-1', '--sounds', str(tmp_path))
    assert result.returncode == 1
    assert f"IVR-1: step 'greeting': missing sound file {tmp_path}/vi/prompts/xin_chao.wav" in result.stdout


def test_render_prints_steps_files_and_the_sentence_heard():
    result = autocall('templates', 'render', 'IVR-1', '--customer', json.dumps(CUSTOMER))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '[menu] menu: wait 5 s for up to 1 key(s), 2 tries' in out
    assert '[greeting] play, then info (a key pressed meanwhile answers menu)' in out
    assert '[thanks] play, then end\n' in out
    assert '  key 9 → record result promise_to_pay, then goto thanks' in out
    assert f"  {SHIPPED}/sounds/vi/words/mot_sac.wav\n" in out
    assert 'ngày mười ba tháng bảy năm hai nghìn không trăm hai mươi mốt' in out
    assert out.rstrip().endswith('Cảm ơn quý khách đã lắng nghe. Chào tạm biệt.')


def test_render_reads_the_customer_from_a_file_and_speaks_southern(tmp_path):
    (tmp_path / 'c.json').write_text(json.dumps(CUSTOMER), encoding='utf-8')
    result = autocall('templates', 'render', 'IVR-1', '--customer', f'@{tmp_path}/c.json', '--variant', 'south')
    assert result.returncode == 0, result.stderr
    assert 'năm hai ngàn không trăm hai mươi mốt' in result.stdout


def test_render_of_a_customer_missing_a_field_exits_1_naming_it():
    customer = {k: v for k, v in CUSTOMER.items() if k != 'upcoming_amount'}
    result = autocall('templates', 'render', 'IVR-1', '--customer', json.dumps(customer))
    assert result.returncode == 1
    assert "customer field 'upcoming_amount' is missing" in result.stderr
    assert result.stdout == ''


@pytest.mark.parametrize('customer', ['{not json', '[1, 2]', '@/nonexistent/customer.json'])
def test_render_with_an_unusable_customer_is_a_usage_error(customer):
    result = autocall('templates', 'render', 'IVR-1', '--customer', customer)
    assert result.returncode == 2
    assert result.stderr.startswith('autocall: --customer:')


def test_render_of_a_broken_template_lists_its_problems(templates_dir):
    (templates_dir / 'BAD.toml').write_text('[[step]]\nid = "a"\nhangup = "yes"\n', encoding='utf-8')
    result = autocall('templates', 'render', 'BAD', '--customer', '{}', '--templates', str(templates_dir))
    assert result.returncode == 1
    assert result.stderr == "BAD: step 'a': write hangup = true\n"


def test_help_and_usage_errors():
    assert autocall('--help').returncode == 0
    assert 'render' in autocall('templates', '--help').stdout
    assert autocall().returncode == 2
    assert autocall('templates', 'render', 'IVR-1').returncode == 2


def test_render_of_a_bad_name_exits_1():
    result = autocall('templates', 'render', '../IVR-1', '--customer', '{}')
    assert result.returncode == 1
    assert 'not a template name' in result.stderr


def test_check_takes_folders_and_transfer_destinations_from_the_config(tmp_path):
    config = tmp_path / "autocall.toml"
    config.write_text('[dialer.transfer_destinations]\nsales = "2000 XML default"\n')
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "templates", "check", "IVR-1", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    # IVR-1 transfers to 'agents', which this config does not define.
    assert done.returncode == 1
    assert "agents" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[templates]\nvariant = 'west'\n")
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "templates", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2 and "templates.variant" in done.stderr
