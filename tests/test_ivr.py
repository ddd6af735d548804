"""Templates: names, checking, rendering one customer's call, walking it, FreeSWITCH arguments, reload."""

import codecs
import logging
import os
import shutil
import tomllib
import wave

import pytest

from daemon import ivr, say_vi
from daemon.esl import UnsafeArgument, commands
from daemon.ivr import (
    EndCall,
    RecordResult,
    RenderError,
    TemplateInvalid,
    TemplateLoader,
    TransferCall,
    UnknownTemplate,
)
from daemon.ivr.loader import SETTLE_SECONDS
from tests.db_faults import Tmpfs, full_disk

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, 'ivr_templates')
SOUNDS = os.path.join(SHIPPED, 'sounds')
PROMPTS = os.path.join(SOUNDS, 'vi', 'prompts')
WORDS = os.path.join(SOUNDS, 'vi', 'words')

CUSTOMER = {
    'id': 'C1',
    'contract_number': 'HD123456',
    'upcoming_amount': 5000000,
    'upcoming_due_date': '2021-07-13',
    'due_date': '2021-06-13',
    'dpd': 45,
    'number_of_ovd_inst': 3,
    'total_ovd_amount': '1015000',
}


def prompt(name):
    return os.path.join(PROMPTS, name + '.wav')


def words(*slugs):
    return [os.path.join(WORDS, slug + '.wav') for slug in slugs]


@pytest.fixture
def templates_dir(tmp_path):
    for name in ('IVR-1', 'IVR-OVERDUE'):
        shutil.copy(os.path.join(SHIPPED, name + '.toml'), tmp_path)
    return tmp_path


def write(directory, name, text):
    path = directory / f'{name}.toml'
    path.write_text(text, encoding='utf-8')
    return str(path)


def problems_of(directory, name, text, **kwargs):
    return [str(p) for p in ivr.check(write(directory, name, text), SOUNDS, **kwargs)]


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['IVR-1', 'IVR-OVERDUE', 'a', 'v2.north_1'])
def test_plain_names_are_template_names(name):
    assert ivr.valid_template_name(name)


@pytest.mark.parametrize(
    'name',
    ['', '..', '../IVR-1', 'a/b', '/etc/passwd', '.hidden', 'a..b', 'IVR 1', 'IVR-1\n', 'x' * 101, None, 5, 'mẫu'],
)
def test_other_names_are_refused(name):
    assert not ivr.valid_template_name(name)


def test_loader_from_config_sees_what_the_dialer_sees(tmp_path, templates_dir):
    from daemon import config

    path = tmp_path / 'autocall.toml'
    path.write_text(
        f"""
[templates]
dir = "{templates_dir}"
sounds = "{SOUNDS}"
variant = "south"

[dialer.transfer_destinations]
team = "2000 XML default"
""",
        encoding='utf-8',
    )
    loader = TemplateLoader.from_config(config.load(path, environ={}))
    assert (loader.templates_dir, loader.sounds_dir) == (str(templates_dir), SOUNDS)
    assert (loader.variant.name, loader.destinations) == ('south', ['team'])
    assert 'IVR-1' in loader.names()


def test_template_path_stays_inside_the_directory(tmp_path):
    assert ivr.template_path(tmp_path, 'IVR-1') == str(tmp_path / 'IVR-1.toml')
    with pytest.raises(UnknownTemplate):
        ivr.template_path(tmp_path, '../../etc/passwd')


# --- the shipped templates -----------------------------------------------------------------


@pytest.mark.parametrize('name', ['IVR-1', 'IVR-OVERDUE'])
@pytest.mark.parametrize('variant', ['north', 'south'])
def test_shipped_templates_have_no_problem(name, variant):
    assert ivr.check(os.path.join(SHIPPED, name + '.toml'), SOUNDS, variant=variant, destinations={'agents'}) == []


def test_ivr1_info_step_plays_contract_digits_amount_and_date():
    script = ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS).render(CUSTOMER)
    assert script.start == 'greeting'
    assert list(script.steps['info'].files) == (
        [prompt('hop_dong_so')]
        + words('chu_h', 'chu_d', 'mot', 'hai', 'ba', 'bon', 'nam', 'sau')
        + [prompt('co_khoan_thanh_toan')]
        + words('nam', 'trieu', 'dong')
        + [prompt('han_thanh_toan')]
        + words(
            'ngay', 'muoi_huyen', 'ba', 'thang', 'bay', 'nam', 'hai', 'nghin', 'khong', 'tram', 'hai', 'muoi', 'mot_sac'
        )
        + [prompt('vui_long_thanh_toan')]
    )
    assert all(os.path.isfile(path) for path in script.files())


def test_ivr1_transcript_is_the_vietnamese_a_silent_listener_hears():
    script = ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS).render(CUSTOMER)
    heard = script.transcript()
    assert 'Hợp đồng số hát đê một hai ba bốn năm sáu có khoản thanh toán kỳ tới là năm triệu đồng' in heard
    assert 'ngày mười ba tháng bảy năm hai nghìn không trăm hai mươi mốt' in heard
    assert heard.endswith('Cảm ơn quý khách đã lắng nghe. Chào tạm biệt.')


def test_overdue_template_speaks_days_instalments_and_total_in_the_south():
    template = ivr.load(os.path.join(SHIPPED, 'IVR-OVERDUE.toml'), SOUNDS, variant='south')
    info = template.render(CUSTOMER).steps['info'].transcript
    assert info == (
        'Hợp đồng số hát đê một hai ba bốn năm sáu đã quá hạn bốn mươi lăm ngày, với ba '
        'kỳ chưa thanh toán. Tổng số tiền quá hạn là một triệu không trăm mười lăm ngàn đồng '
        'Đề nghị quý khách thanh toán ngay để tránh ảnh hưởng đến lịch sử tín dụng.'
    )


@pytest.mark.parametrize(
    'field, value',
    [
        ('upcoming_amount', None),
        ('upcoming_amount', ''),
        ('upcoming_amount', 'năm triệu'),
        ('upcoming_amount', -1),
        ('upcoming_due_date', '31/02/2021'),
        ('contract_number', 'HƯ-1'),
    ],
)
def test_render_refuses_a_missing_or_unspeakable_field_by_name(field, value):
    template = ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS)
    with pytest.raises(RenderError) as info:
        template.render({**CUSTOMER, field: value})
    assert info.value.field == field
    assert field in str(info.value) and 'IVR-1' in str(info.value)


def test_render_refuses_a_customer_without_the_field():
    template = ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS)
    customer = {k: v for k, v in CUSTOMER.items() if k != 'upcoming_due_date'}
    with pytest.raises(RenderError, match="'upcoming_due_date' is missing"):
        template.render(customer)


# --- walking a call ------------------------------------------------------------------------


@pytest.fixture
def script():
    return ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS).render(CUSTOMER)


@pytest.mark.parametrize(
    'step, digits, expected',
    [
        ('greeting', None, ('info', ())),
        ('info', None, ('menu', ())),
        ('menu', '1', ('info', ())),
        ('menu', '2', ('to_agent', (RecordResult('wants_agent'),))),
        ('menu', '9', ('thanks', (RecordResult('promise_to_pay'),))),
        ('menu', None, ('goodbye', ())),
        ('menu', '', ('goodbye', ())),
        ('menu', '5', ('goodbye', ())),
        ('to_agent', None, ('transfer', ())),
        ('transfer', None, (None, (TransferCall('agents'),))),
        ('thanks', None, ('end', ())),
        ('goodbye', None, ('end', ())),
        ('end', None, (None, (EndCall(),))),
    ],
)
def test_next_step_branches_on_the_keys_pressed(script, step, digits, expected):
    assert ivr.next_step(script, step, digits) == expected


def walk(script, keys):
    """The steps visited and effects seen when the callee presses `keys` at successive menus."""
    keys, visited, effects, step = list(keys), [], [], script.start
    while step is not None:
        visited.append(step)
        digits = keys.pop(0) if isinstance(script.steps[step], ivr.Menu) and keys else None
        step, more = ivr.next_step(script, step, digits)
        effects += more
    return visited, effects


def test_a_silent_callee_hears_everything_once_then_goodbye(script):
    assert walk(script, []) == (['greeting', 'info', 'menu', 'goodbye', 'end'], [EndCall()])


def test_hear_again_then_confirm_records_promise_to_pay(script):
    visited, effects = walk(script, ['1', '9'])
    assert visited == ['greeting', 'info', 'menu', 'info', 'menu', 'thanks', 'end']
    assert effects == [RecordResult('promise_to_pay'), EndCall()]


def test_repeat_action_reenters_the_same_menu(tmp_path):
    path = write(
        tmp_path,
        'R',
        '''
[[step]]
id = "menu"
menu = "menu_truoc_han"
keys = { 1 = "repeat", 2 = "hangup" }
''',
    )
    script = ivr.load(path, SOUNDS).render({})
    assert ivr.next_step(script, 'menu', '1') == ('menu', ())
    assert ivr.next_step(script, 'menu', None) == (None, (EndCall(),))


# --- FreeSWITCH argument strings (daemon.esl.commands, built from ivr steps) -----------------


def test_menu_argument_follows_play_and_get_digits_order(script):
    arg = commands.play_and_get_digits_arg(script.steps['menu'], 'autocall_menu_1')
    assert arg == (
        f"1 1 2 5000 # {prompt('menu_truoc_han')} {prompt('phim_khong_hop_le')} autocall_menu_1 ^(1|2|9)$ 3000"
    )


def test_menu_argument_joins_several_files_and_defaults_invalid_to_silence(script):
    menu = ivr.Menu(
        'm',
        (prompt('a'), prompt('b')),
        4000,
        3,
        1,
        2000,
        {'*': ivr.Repeat(), '#': ivr.EndCall()},
        ivr.EndCall(),
        ivr.EndCall(),
    )
    assert commands.play_and_get_digits_arg(menu, 'v') == (
        f"1 1 3 4000 none file_string://{prompt('a')}!{prompt('b')} silence_stream://250 v ^(#|[*])$ 2000"
    )


@pytest.mark.parametrize(
    'bad',
    [
        '/tmp/a b.wav',
        '/tmp/a!b.wav',
        '/tmp/{x}.wav',
        "/tmp/it's.wav",
        '/tmp/a\nb.wav',
        '/tmp/${x}.wav',
        'relative.wav',
        '/tmp/a\tb.wav',
    ],
)
def test_unsafe_paths_never_reach_an_argument(script, bad):
    menu = script.steps['menu']
    with pytest.raises(UnsafeArgument):
        commands.play_and_get_digits_arg(ivr.Menu(**{**menu.__dict__, 'files': (bad,)}), 'v')
    with pytest.raises(UnsafeArgument):
        commands.playback_arg([prompt('a'), bad])


@pytest.mark.parametrize('var_name', ['', 'a b', 'x}', '1abc', "v'"])
def test_unsafe_variable_names_are_refused(script, var_name):
    with pytest.raises(UnsafeArgument):
        commands.play_and_get_digits_arg(script.steps['menu'], var_name)


def test_playback_argument_is_one_file_or_a_file_string():
    assert commands.playback_arg([prompt('a')]) == prompt('a')
    assert commands.playback_arg([prompt('a'), prompt('b')]) == f"file_string://{prompt('a')}!{prompt('b')}"


# --- check finds every problem -------------------------------------------------------------

BROKEN = '''
[template]
description = "broken on purpose"
colour = "blue"

[[step]]
id = "greeting"
play = ["xin_chao", "no_such_prompt", { money = "amount_due" }]

[[step]]
id = "menu"
menu = "menu_truoc_han"
timeout = "five"
tries = 0
keys = { 1 = "goto nowhere", 2 = "transfer boss", 3 = "dance", 4 = "result ok" }
no_key = "goto greeting"

[[step]]
id = "orphan"
speak = "hello"

[[step]]
id = "island"
play = ["tam_biet"]
next = "island"
'''


def test_check_names_every_problem_with_template_and_step(tmp_path):
    found = problems_of(tmp_path, 'BROKEN', BROKEN, destinations={'agents'})
    expected = [
        "BROKEN: unknown setting 'colour' in [template]",
        "BROKEN: step 'greeting': missing sound file " + prompt('no_such_prompt'),
        "BROKEN: step 'greeting': unknown customer field 'amount_due'",
        "BROKEN: step 'menu': timeout must be a number from 1 to 60 seconds, not 'five'",
        "BROKEN: step 'menu': tries must be a whole number from 1 to 5, not 0",
        "BROKEN: step 'menu': key '1': goto to missing step 'nowhere'",
        "BROKEN: step 'menu': transfer destination 'boss' is not configured (known: agents)",
        "BROKEN: step 'menu': key '3': unknown action 'dance'",
        "BROKEN: step 'menu': key '4': unknown action 'result ok'",
        "BROKEN: step 'orphan': unknown step type",
    ]
    for text in expected:
        assert any(line.startswith(text) for line in found), (text, found)
    assert len(found) == len(expected)


def test_check_finds_unreachable_steps_traps_and_silent_loops(tmp_path):
    found = problems_of(
        tmp_path,
        'LOOPS',
        '''
[[step]]
id = "greeting"
play = ["xin_chao"]

[[step]]
id = "menu"
menu = "menu_truoc_han"
keys = { 1 = "goto spin", 9 = "hangup" }
no_key = "goto greeting"

[[step]]
id = "spin"
play = ["tam_biet"]
next = "spin"

[[step]]
id = "island"
hangup = true
''',
    )
    assert found == [
        "LOOPS: step 'island': unreachable: no step leads here",
        "LOOPS: step 'spin': steps spin loop forever with no way out: nothing among them hangs up or transfers",
        "LOOPS: step 'greeting': a callee who presses no key loops forever: greeting → menu → greeting; "
        "make a menu's no_key end the call or go on to another step",
    ]


def test_check_reports_toml_syntax_with_its_line(tmp_path):
    found = problems_of(tmp_path, 'SYNTAX', '[[step]]\nid = "a"\nplay = [xin_chao]\n')
    assert len(found) == 1
    assert found[0].startswith('SYNTAX: TOML syntax error:') and 'line 3' in found[0]


def test_check_reports_missing_word_files(tmp_path):
    sounds = tmp_path / 'sounds'
    shutil.copytree(SOUNDS, sounds)
    os.remove(sounds / 'vi' / 'words' / 'trieu.wav')
    path = write(tmp_path, 'W', '[[step]]\nid = "a"\nsay = "upcoming_amount"\nas = "money"\n')
    found = [str(p) for p in ivr.check(path, str(sounds))]
    assert len(found) == 1
    assert "step 'a': saying field 'upcoming_amount' as money needs word files missing" in found[0]
    assert found[0].endswith(': trieu.wav')


def test_check_refuses_sound_paths_freeswitch_would_misread(tmp_path):
    sounds = tmp_path / 'my sounds'  # a space splits a playback argument in two
    shutil.copytree(SOUNDS, sounds)
    path = write(tmp_path, 'S', '[[step]]\nid = "a"\nplay = ["xin_chao", { money = "upcoming_amount" }]\n')
    found = [str(p) for p in ivr.check(path, str(sounds))]
    assert found == [
        f"S: step 'a': sound file path {sounds}/vi/prompts/xin_chao.wav has spaces or characters FreeSWITCH misreads",
        f"S: step 'a': word folder {sounds}/vi/words has spaces or characters FreeSWITCH misreads",
    ]


def test_declared_extra_fields_can_be_spoken(tmp_path):
    path = write(
        tmp_path,
        'X',
        '''
[template]
fields = ["fee"]

[[step]]
id = "fee"
say = "fee"
as = "money"
''',
    )
    script = ivr.load(path, SOUNDS).render({'fee': 15000})
    assert script.steps['fee'].transcript == 'mười lăm nghìn đồng'


def test_load_of_an_invalid_template_raises_with_every_problem(tmp_path):
    with pytest.raises(TemplateInvalid) as info:
        ivr.load(write(tmp_path, 'BROKEN', BROKEN), SOUNDS)
    assert [str(p) for p in info.value.problems] == problems_of(tmp_path, 'BROKEN', BROKEN)
    assert len(info.value.problems) == 9


# --- loader and reload ---------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def edit(path, old, new):
    text = path.read_text(encoding='utf-8')
    assert old in text
    path.write_text(text.replace(old, new), encoding='utf-8')
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later edit, whatever the fs clock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def loader(templates_dir, clock):
    return TemplateLoader(templates_dir, SOUNDS, clock=clock, recheck_seconds=1.0)


def test_loader_lists_and_gets_templates(loader):
    assert loader.names() == ['IVR-1', 'IVR-OVERDUE']
    assert loader.get('IVR-1').name == 'IVR-1'
    assert loader.get('IVR-1') is loader.get('IVR-1')


def test_an_edit_takes_effect_once_the_file_has_been_still_for_the_settle_time(loader, templates_dir, clock):
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 5000
    edit(templates_dir / 'IVR-1.toml', 'timeout = 5 ', 'timeout = 8 ')
    clock.now += 1.0
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 5000  # first seen now
    clock.now += SETTLE_SECONDS
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 8000


def test_a_file_saved_in_place_is_not_taken_half_written(loader, templates_dir, clock, caplog):
    """Found by the careless-operator review: an editor saving IVR-1.toml in place, slowly (or a
    pause mid-copy), leaves for a moment its first steps alone, a valid template: the dialer
    took it, and 20 of 30 customers heard the greeting, were hung up and ended `success`."""
    path = templates_dir / 'IVR-1.toml'
    whole = path.read_text(encoding='utf-8')
    good = loader.get('IVR-1')
    cut = whole[: whole.index('[[step]]\nid = "info"')]  # the greeting alone
    assert problems_of(templates_dir, 'CUT', cut) == []  # `autocall templates check` passes it
    caplog.set_level(logging.INFO, logger='autocall.ivr')
    path.write_text(cut, encoding='utf-8')
    for _ in range(2):  # a second of it, then the rest comes
        clock.now += 1.0
        assert loader.get('IVR-1') is good
    path.write_text(whole.replace('timeout = 5 ', 'timeout = 8 '), encoding='utf-8')
    for _ in range(2):
        clock.now += 1.0
        assert loader.get('IVR-1') is good
    clock.now += 1.0
    assert list(loader.get('IVR-1').drafts) == list(good.drafts)  # the whole edit, once still
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 8000


def test_an_edit_that_appears_while_its_disk_is_full_waits_until_it_is_saved_again(tmp_path, clock, caplog):
    """Found by the careless-operator review: a save cut short by a full disk stays still, so the
    settle time passed it, and a cut that ends after the greeting is a valid template."""
    if not Tmpfs.available():
        pytest.skip('mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine')
    disk = Tmpfs(tmp_path / 'disk', 1 << 20)
    try:
        path = disk.path / 'IVR-1.toml'
        shutil.copy(os.path.join(SHIPPED, 'IVR-1.toml'), path)
        whole = path.read_text(encoding='utf-8')
        loader = TemplateLoader(disk.path, SOUNDS, clock=clock, recheck_seconds=1.0)
        good = loader.get('IVR-1')
        with full_disk(disk.path):
            path.write_text(whole[: whole.index('[[step]]\nid = "info"')], encoding='utf-8')  # what fitted
            for _ in range(5):
                clock.now += 1.0
                assert loader.get('IVR-1') is good
            assert loader.changing('IVR-1')  # its queues' customers wait rather than stop the queue
        assert 'changed while the disk holding it is full' in caplog.text
        clock.now += 1.0
        assert loader.get('IVR-1') is good  # room again, but that file is still the cut one
        path.write_text(whole.replace('timeout = 5 ', 'timeout = 8 '), encoding='utf-8')  # saved again
        clock.now += 1.0
        assert loader.get('IVR-1') is good  # first seen: it settles as any edit
        clock.now += SETTLE_SECONDS
        assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 8000
    finally:
        disk.unmount()


@pytest.mark.parametrize('bad', ['["end"]', '{ a = 1 }'])
def test_a_next_that_is_no_step_id_is_a_problem_and_keeps_the_last_good_version(loader, templates_dir, clock, bad):
    # Found by the careless-operator review: `next = ["end"]` raised TypeError (a list cannot be
    # looked up in a set of ids) out of the loader, and the dialer crashed on every start.
    good = loader.get('IVR-1')
    edit(templates_dir / 'IVR-1.toml', 'next = "end"', f'next = {bad}')
    clock.now += 1.0
    assert loader.get('IVR-1') is good
    with pytest.raises(ivr.TemplateInvalid, match="step 'thanks': next must be the id of a step"):
        loader.get_current('IVR-1')


def test_a_template_saved_with_a_byte_order_mark_is_read(loader, templates_dir, clock):
    # Found by the careless-operator review: Notepad's BOM read as "TOML syntax error: Invalid
    # statement (at line 1, column 1)", and the edit was refused for a byte nobody can see.
    path = templates_dir / 'IVR-1.toml'
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes().replace(b'timeout = 5 ', b'timeout = 8 '))
    clock.now += 1.0
    assert loader.get_current('IVR-1').drafts['menu'].step.timeout_ms == 8000


def test_files_are_not_looked_at_again_before_the_recheck_interval(templates_dir, clock):
    loader = TemplateLoader(templates_dir, SOUNDS, clock=clock, recheck_seconds=1.0, settle_seconds=0)
    loader.get('IVR-1')
    edit(templates_dir / 'IVR-1.toml', 'timeout = 5 ', 'timeout = 8 ')
    clock.now += 0.5
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 5000
    clock.now += 0.5
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 8000


def test_a_broken_edit_keeps_the_last_good_version_and_is_logged_once(loader, templates_dir, clock, caplog):
    good = loader.get('IVR-1')
    edit(templates_dir / 'IVR-1.toml', 'goto goodbye', 'goto nowhere')
    caplog.set_level(logging.ERROR, logger='autocall.ivr')
    for _ in range(3):
        clock.now += 1.0
        assert loader.get('IVR-1') is good
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert 'IVR-1.toml' in errors[0] and "goto to missing step 'nowhere'" in errors[0]
    assert 'last good version' in errors[0]


def test_fixing_a_broken_edit_loads_the_fix(loader, templates_dir, clock):
    loader.get('IVR-1')
    edit(templates_dir / 'IVR-1.toml', 'timeout = 5 ', 'timeout = "5s" ')
    clock.now += 1.0
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 5000
    edit(templates_dir / 'IVR-1.toml', 'timeout = "5s" ', 'timeout = 7 ')
    clock.now += 1.0
    loader.get('IVR-1')
    clock.now += SETTLE_SECONDS
    assert loader.get('IVR-1').drafts['menu'].step.timeout_ms == 7000


def test_a_removed_file_holds_its_queues_back_says_so_once_and_is_taken_again_when_back(
    loader, templates_dir, clock, caplog
):
    """Found by the careless-operator review: a removed template went on being dialled with the
    version in memory, without a word, where a dialer started without the file holds its queues
    back: an operator who removes a template to stop a wrong message must stop it."""
    path = templates_dir / 'IVR-1.toml'
    whole = path.read_bytes()
    loader.get('IVR-1')
    caplog.set_level(logging.ERROR, logger='autocall.ivr')
    path.unlink()
    for _ in range(2):
        clock.now += 1.0
        with pytest.raises(UnknownTemplate, match='IVR-1.toml does not exist'):
            loader.get('IVR-1')
    assert [r.getMessage() for r in caplog.records] == [
        f'template IVR-1: {path} was removed; its queues wait until it is back'
    ]
    path.write_bytes(whole)
    clock.now += 1.0
    with pytest.raises(UnknownTemplate):
        loader.get('IVR-1')  # being written, perhaps: taken once still
    clock.now += SETTLE_SECONDS
    assert loader.get('IVR-1').name == 'IVR-1'


@pytest.mark.parametrize('kind', ['symlink loop', 'fifo', 'huge', 'folder'])
def test_a_template_file_that_cannot_be_read_safely_is_a_problem_of_its_own(loader, templates_dir, clock, kind):
    """Found by the careless-operator review: a symlink loop raised ELOOP out of the loader (the
    dialer died and restarted in a loop), a FIFO blocked the dialer's loop in open(), and a 1 GiB
    file took 2 GB of memory against the unit's MemoryMax. Each is now the template's problem,
    refused without reading it, and the last good version stays in use."""
    good = loader.get('IVR-1')
    path = templates_dir / 'IVR-1.toml'
    path.unlink()
    if kind == 'symlink loop':
        path.symlink_to(path)
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'huge':
        with open(path, 'wb') as fh:
            fh.truncate(1 << 30)  # sparse: no disk used
    else:
        path.mkdir()
    expected = {
        'symlink loop': 'cannot read',
        'fifo': 'not a regular file',
        'huge': '1,073,741,824 bytes; at most 1,048,576',
        'folder': 'not a regular file',
    }[kind]
    clock.now += 1.0
    assert loader.get('IVR-1') is good
    with pytest.raises(TemplateInvalid, match=expected):
        loader.get_current('IVR-1')
    fresh = TemplateLoader(templates_dir, SOUNDS, clock=clock)  # a start with the file so
    with pytest.raises(TemplateInvalid, match=expected):
        fresh.get('IVR-1')


def test_unknown_and_never_valid_templates_are_named_errors(loader, templates_dir):
    with pytest.raises(UnknownTemplate, match='IVR-9'):
        loader.get('IVR-9')
    with pytest.raises(UnknownTemplate):
        loader.get('../IVR-1')
    write(templates_dir, 'BROKEN', BROKEN)
    with pytest.raises(TemplateInvalid) as info:
        loader.get('BROKEN')
    assert info.value.name == 'BROKEN'
    assert loader.check('BROKEN') == list(info.value.problems)


@pytest.mark.parametrize(
    'text',
    [
        'step = 5',
        'template = 5\n[[step]]\nid = "a"\nhangup = true',
        '[[step]]\nid = 5\nplay = 5',
        '[[step]]\nid = "a"\nplay = [5, {}, { money = 5 }, { a = "b", c = "d" }]',
        '[[step]]\nid = "a"\nplay = ["xin_chao"]\nnext = "b"',
        '[[step]]\nid = "a"\nplay = ["xin_chao"]\nnext = 7',
        '[[step]]\nid = "a"\nmenu = 5\nkeys = [1]\nno_key = 3\ninvalid = [1]',
        '[[step]]\nid = "a"\nmenu = "x"\nkeys = { "12" = "hangup", a = "goto" }\ntries = true',
        '[[step]]\nid = "a"\nsay = ["dpd"]\nas = 5',
        '[[step]]\nid = "a"\ntransfer = "x y"\nplay = ["xin_chao"]',
        '[[step]]\nid = "a"\nplay = ["../../etc/passwd", "/abs", "a b"]',
        '[template]\nstart = ["a"]\nfields = "dpd"\nprompts = "../x"\n[[step]]\nid = "a"\nhangup = true',
        '[[step]]\nid = "a"\nhangup = true\n[[step]]\nid = "a"\nhangup = true',
    ],
)
def test_check_reports_malformed_documents_without_crashing(tmp_path, text):
    found = problems_of(tmp_path, 'ODD', text)
    assert found and all(line.startswith('ODD') for line in found)


# --- the committed sound pack and the operator's README ------------------------------------


def pack_files():
    with open(os.path.join(PROMPTS, 'texts.toml'), 'rb') as fh:
        prompts = tomllib.load(fh)
    return [f'vi/words/{slug}.wav' for slug in say_vi.WORDS] + [f'vi/prompts/{name}.wav' for name in prompts]


def test_every_word_and_prompt_is_committed_as_8khz_mono_16bit_wav():
    for rel in pack_files():
        with wave.open(os.path.join(SOUNDS, rel), 'rb') as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2), rel
            assert 0.05 < wav.getnframes() / 8000 < 15, rel


def test_sound_pack_stays_small_and_its_readme_lists_every_file():
    total = sum(os.path.getsize(os.path.join(SOUNDS, rel)) for rel in pack_files())
    assert total < 4_000_000
    with open(os.path.join(SOUNDS, 'README.md'), encoding='utf-8') as fh:
        readme = fh.read()
    assert [rel for rel in pack_files() if f'`{rel}`' not in readme] == []


def test_the_example_in_the_operators_readme_is_a_valid_template(tmp_path):
    with open(os.path.join(SHIPPED, 'README.md'), encoding='utf-8') as fh:
        example = fh.read().split('```toml\n', 1)[1].split('```', 1)[0]
    assert problems_of(tmp_path, 'EXAMPLE', example) == []


def test_a_template_waiting_for_its_recording_loads_once_the_file_arrives(templates_dir, tmp_path, clock, caplog):
    sounds = tmp_path / 'sounds'
    shutil.copytree(SOUNDS, sounds)
    write(templates_dir, 'NEW', '[[step]]\nid = "a"\nplay = ["new_prompt"]\n')
    loader = TemplateLoader(templates_dir, sounds, clock=clock)
    caplog.set_level(logging.ERROR, logger='autocall.ivr')
    for _ in range(2):
        clock.now += 1.0
        with pytest.raises(TemplateInvalid, match='missing sound file'):
            loader.get('NEW')
    assert len(caplog.records) == 1 and 'it cannot be used' in caplog.records[0].getMessage()
    shutil.copy(sounds / 'vi' / 'prompts' / 'tam_biet.wav', sounds / 'vi' / 'prompts' / 'new_prompt.wav')
    clock.now += 1.0
    assert loader.get('NEW').render({}).steps['a'].files == (str(sounds / 'vi' / 'prompts' / 'new_prompt.wav'),)


def test_a_template_file_created_later_is_found(loader, templates_dir, clock):
    with pytest.raises(UnknownTemplate):
        loader.get('LATER')
    write(templates_dir, 'LATER', '[[step]]\nid = "a"\nhangup = true\n')
    clock.now += 1.0
    assert loader.get('LATER').start == 'a'


def test_wrong_key_does_what_no_key_does_unless_told_otherwise(tmp_path):
    path = write(
        tmp_path,
        'W',
        '''
[[step]]
id = "menu"
menu = "menu_truoc_han"
keys = { 1 = "goto bye" }
no_key = "result silent then goto bye"

[[step]]
id = "bye"
hangup = true
''',
    )
    script = ivr.load(path, SOUNDS).render({})
    assert (
        ivr.next_step(script, 'menu', '7') == ivr.next_step(script, 'menu', None) == ('bye', (RecordResult('silent'),))
    )


def test_a_menu_setting_written_below_its_keys_is_pointed_out(tmp_path):
    found = problems_of(
        tmp_path,
        'K',
        '''
[[step]]
id = "menu"
menu = "menu_truoc_han"

[step.keys]
1 = "hangup"
no_key = "hangup"
''',
    )
    assert found == ["K: step 'menu': 'no_key' is inside [step.keys]: move it above the [step.keys] line"]


# --- barge-in: keys pressed while the prompts before a menu play --------------------------


def test_the_prompts_leading_into_a_menu_take_its_keys(script):
    assert {step_id: getattr(step, 'barge_into', None) for step_id, step in script.steps.items()} == {
        'greeting': 'menu',
        'info': 'menu',
        'menu': None,
        'to_agent': None,
        'transfer': None,
        'thanks': None,
        'goodbye': None,
        'end': None,
    }


@pytest.mark.parametrize(
    'step, digits, expected',
    [
        ('greeting', '9', ('thanks', (RecordResult('promise_to_pay'),))),
        ('info', '1', ('info', ())),
        ('greeting', '5', ('goodbye', ())),  # a key outside the menu is its wrong key
        ('thanks', '9', ('end', ())),  # after the menu: a key changes nothing
    ],
)
def test_a_key_during_a_prompt_answers_the_menu_it_leads_into(script, step, digits, expected):
    assert ivr.next_step(script, step, digits) == expected


BARGE_OFF = '''
[[step]]
id = "hello"
play = ["xin_chao"]

[[step]]
id = "menu"
menu = "menu_truoc_han"
barge_in = %s
keys = { 1 = "hangup", 12 = "hangup" }
max_digits = 2
'''


def test_a_menu_can_turn_barge_in_off(tmp_path):
    script = ivr.load(write(tmp_path, 'B', BARGE_OFF % 'false'), SOUNDS).render({})
    assert script.steps['hello'].barge_into is None
    assert ivr.next_step(script, 'hello', '1') == ('menu', ())


def test_barge_in_must_be_true_or_false(tmp_path):
    assert problems_of(tmp_path, 'B', BARGE_OFF % '"no"') == [
        "B: step 'menu': barge_in must be true or false, not 'no'"
    ]


def test_the_rest_of_a_longer_answer_is_collected_without_a_prompt(tmp_path):
    menu = ivr.load(write(tmp_path, 'B', BARGE_OFF % 'true'), SOUNDS).render({}).steps['menu']
    assert commands.rest_of_menu_arg(menu, '1', 'v') == '1 1 1 3000 # silence silence_stream://250 v ^(2)$ 3000'
    assert commands.rest_of_menu_arg(menu, '7', 'v') is None


def test_playback_terminators_are_fixed_words():
    assert commands.playback_terminators_arg(True) == 'playback_terminators=any'
    assert commands.playback_terminators_arg(False) == 'playback_terminators=none'


def test_template_files_cover_every_word_its_fields_may_need():
    template = ivr.load(os.path.join(SHIPPED, 'IVR-1.toml'), SOUNDS)
    files = template.files()
    assert prompt('xin_chao') in files and prompt('phim_khong_hop_le') in files
    assert set(words(*say_vi.possible_slugs('money'))) <= set(files)
    assert set(template.render(CUSTOMER).files()) <= set(files)
    assert len(files) == len(set(files))
