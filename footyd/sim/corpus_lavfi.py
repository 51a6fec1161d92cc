"""A second, held-out dedup corpus rendered by the ffmpeg CLI alone (bench and tests).

It shares no rendering code with `sim/corpus.py` (OpenCV drawing, PyAV encoding): the scene is an
ffmpeg `geq` panorama (mowing stripes, a sine-pattern crowd, advertising boards), players and
ball are sprites `overlay`ed on paths that are functions of time, a camera is a moving `crop`,
the broadcast graphics are `drawbox`/`drawtext` (a score bug and a channel logo in another
font and place), and every copy is an x264 encode by the ffmpeg binary.

The hard case it is built around: several distinct replays of ONE goal from ONE broadcast (same
pitch, kits, score bug and logo; a different camera, or the same camera at another moment), each
crossed with every transform a re-poster applies. Labels are `g{goal}r{replay}`.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from footyd.sim.corpus import CorpusClip

PANO_W, PANO_H = 2560, 900
FPS = 25
MASTER_W, MASTER_H = 1280, 720
SCORE_TEXT = "NOR 2-1 SOU"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50", "-bf", "2",
        "-an", "-movflags", "+faststart"]


@dataclass(frozen=True)
class Camera:
    """A broadcast camera: crop width in panorama pixels (16:9), what it follows, its lag."""

    name: str
    crop_w: int
    follows: str  # "ball", "scorer" or "keeper"
    lag_s: float
    y_frac: float  # where the crop sits vertically in the free range (0 top, 1 bottom)


# replay r of a goal: (camera, start of its window in the goal's action, seconds)
CAMERAS = (Camera("main", 1600, "ball", 0.0, 0.5), Camera("tight", 880, "scorer", 0.4, 0.8),
           Camera("main", 1600, "ball", 0.0, 0.5), Camera("low", 1120, "keeper", 0.8, 1.0))
REPLAY_STARTS = (0.0, 1.0, 9.0, 4.0)  # the third replay: the same camera, the celebration


@dataclass(frozen=True)
class Transform:
    """One re-poster's treatment of a replay: ffmpeg -vf chain, trim, rate control."""

    name: str
    width: int
    height: int
    vf: str = ""  # before the final scale
    start_s: float = 0.0
    end_cut_s: float = 0.0
    quality: tuple[str, ...] = ("-crf", "21")
    scored: bool = True  # False: only its matches with other labels count (false positives)
    post_vf: str = ""  # after the final scale (a watermark at the output size)


def _wm(text: str, where: str, size: int) -> str:
    return (f"drawtext=text='{text}':fontsize={size}:fontcolor=white@0.75:borderw=2:"
            f"bordercolor=black@0.5:{where}")


TRANSFORMS = (
    Transform("hd", 1280, 720),
    Transform("sd", 854, 480, quality=("-crf", "24")),
    Transform("low360", 640, 360, quality=("-b:v", "200k", "-maxrate", "260k", "-bufsize", "400k")),
    Transform("lq360", 640, 360, quality=("-crf", "40")),
    Transform("trim1", 640, 360, start_s=1.0, quality=("-crf", "26")),
    Transform("trim04", 854, 480, start_s=0.4),
    Transform("endcut", 1280, 720, end_cut_s=2.0),
    Transform("cut", 854, 480, start_s=0.7, end_cut_s=1.5),
    Transform("overlay", 854, 480, post_vf="drawbox=x=0:y=ih*0.80:w=iw:h=ih*0.12:color=0xc01010@0.8:t=fill,"
              + _wm("FOLLOW @goalclips_tv", "x=20:y=h*0.82", 26)),
    Transform("combo", 640, 360, vf="crop=iw*0.84:ih*0.84", start_s=0.7, end_cut_s=1.3,
              quality=("-b:v", "300k", "-maxrate", "360k", "-bufsize", "600k"),
              post_vf=_wm("@footy_reposts", "x=w-tw-12:y=h-th-12", 18)),
    Transform("combo2", 854, 480, vf="crop=iw*0.78:ih*0.78:iw*0.08:ih*0.14", start_s=1.3,
              end_cut_s=0.6, quality=("-b:v", "350k", "-maxrate", "420k", "-bufsize", "700k"),
              post_vf=_wm("HD REPLAY", "x=12:y=12", 22)),
    Transform("pillar", 640, 360, vf="crop=ih*4/3:ih,scale=480:360,pad=640:360:80:0", scored=False),
    Transform("portrait", 360, 640, vf="crop=ih*9/16:ih", scored=False),
    # a speed ramp (2 s to 4 s played at half speed) and a mirrored copy: copies a person calls
    # the same clip, which a per-frame hash lined up at one offset cannot see whole
    Transform("slowmo", 854, 480,
              vf="setpts='if(lt(T,2),PTS,if(lt(T,4),2*PTS-2/TB,PTS+2/TB))',fps=25"),
    Transform("mirror", 854, 480, vf="hflip"),
)
SCORED_HARD = ("slowmo", "mirror")  # reported on their own: see bench/dedup_quality.py


@dataclass(frozen=True)
class _Sprite:
    color: str
    shorts: str
    x0: float  # panorama x at T=0
    vx: float
    amp: float
    w: float
    phase: float
    y0: float


def _goal_action(goal: int) -> tuple[list[_Sprite], _Sprite]:
    """Players and ball of one goal: seeded paths over 20 s of action (T = replay time)."""
    rng = random.Random(9000 + goal)
    players = []
    for i in range(12):
        home = i % 2 == 0
        players.append(_Sprite(color="0xd21e2d" if home else "0xf2f2f2",
                               shorts="0xf2f2f2" if home else "0x1b2a6b",
                               x0=rng.uniform(500, 2000), vx=rng.uniform(-25, 60),
                               amp=rng.uniform(20, 120), w=rng.uniform(0.3, 1.4),
                               phase=rng.uniform(0, 6.28), y0=rng.uniform(330, 800)))
    ball = _Sprite(color="white", shorts="white", x0=rng.uniform(700, 1000), vx=95.0,
                   amp=rng.uniform(40, 90), w=0.9, phase=rng.uniform(0, 6.28),
                   y0=rng.uniform(450, 650))
    return players, ball


def _path_x(s: _Sprite, t0: float) -> str:
    return f"({s.x0:.1f}+{s.vx:.2f}*(t+{t0:.2f})+{s.amp:.1f}*sin({s.w:.3f}*(t+{t0:.2f})+{s.phase:.3f}))"


def _path_y(s: _Sprite, t0: float) -> str:
    return f"({s.y0:.1f}+{0.6 * s.amp:.1f}*cos({0.7 * s.w:.3f}*(t+{t0:.2f})+{s.phase:.3f}))"


@cache
def _has_drawtext() -> bool:
    """Whether this ffmpeg can draw text with a default font (fontconfig); boxes only if not."""
    res = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                          "color=s=64x64:d=0.04", "-vf", "drawtext=text=A", "-f", "null", "-"],
                         capture_output=True, check=False)
    return res.returncode == 0


def _text(chain: str) -> str:
    if _has_drawtext():
        return chain
    return ",".join(f for f in chain.split(",") if f and not f.startswith("drawtext"))


def _ffmpeg(args: list[str]) -> None:
    res = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {res.stderr.strip()[-800:]}")


def _panorama(path: Path) -> None:
    """The stadium: striped pitch, a crowd band of interfering sines, boards, white lines."""
    stripe = "mod(floor((X+40*sin(Y/90))/150)\\,2)"
    crowd = "lt(Y\\,170)"
    board = "lt(Y\\,205)"
    geq = (f"geq=r='if({crowd}\\,120+100*sin(X*0.21)*sin(Y*0.37)\\,"
           f"if({board}\\,30+200*mod(floor(X/310)\\,2)\\,38+20*{stripe}))':"
           f"g='if({crowd}\\,90+80*sin(X*0.13+1)*sin(Y*0.29)\\,if({board}\\,40+60*mod(floor(X/310+1)\\,3)\\,"
           f"104+26*{stripe}))':"
           f"b='if({crowd}\\,100+90*sin(X*0.07+2)*sin(Y*0.41)\\,if({board}\\,160*mod(floor(X/620)\\,2)\\,"
           f"36+12*{stripe}))'")
    lines = ",".join([
        "drawbox=x=0:y=222:w=iw:h=5:color=white@0.9:t=fill",
        "drawbox=x=1278:y=222:w=5:h=ih:color=white@0.9:t=fill",
        "drawbox=x=2080:y=330:w=480:h=440:color=white@0.9:t=5",
        "drawbox=x=2380:y=450:w=180:h=200:color=white@0.9:t=5",
        "drawbox=x=0:y=330:w=480:h=440:color=white@0.9:t=5",
    ])
    boards = _text(",".join(f"drawtext=text='{w}':x={x}:y=176:fontsize=24:fontcolor=white"
                            for w, x in (("AERO", 80), ("KOVA BANK", 420), ("ZESTRA", 900),
                                         ("AERO", 1400), ("PLINTH", 1900), ("KOVA BANK", 2250))))
    _ffmpeg(["-f", "lavfi", "-i", f"color=c=black:s={PANO_W}x{PANO_H},format=rgb24,{geq},{lines},{boards}",
             "-frames:v", "1", str(path)])


def _master(path: Path, pano: Path, goal: int, replay: int, seconds: float) -> None:
    """Render replay `replay` of goal `goal` at 1280x720 (a near-lossless master)."""
    cam = CAMERAS[replay % len(CAMERAS)]
    t0 = REPLAY_STARTS[replay % len(REPLAY_STARTS)]
    players, ball = _goal_action(goal)
    inputs = ["-loop", "1", "-framerate", str(FPS), "-i", str(pano)]
    graph = []
    last = "0:v"
    for i, p in enumerate([*players, ball]):
        is_ball = p is ball
        size = "14x14" if is_ball else "26x58"
        sprite = (f"color=c={p.color}:s={size}:r={FPS}" if is_ball else
                  f"color=c={p.color}:s={size}:r={FPS},drawbox=x=0:y=34:w=26:h=24:color={p.shorts}:t=fill,"
                  f"drawbox=x=8:y=0:w=10:h=10:color=0xd9a877:t=fill")
        graph.append(f"{sprite}[s{i}]")
        graph.append(f"[{last}][s{i}]overlay=x='{_path_x(p, t0)}':y='{_path_y(p, t0)}'[o{i}]")
        last = f"o{i}"
    target = {"ball": ball, "scorer": players[2], "keeper": players[5]}[cam.follows]
    lag = cam.lag_s
    cx = f"clip({_path_x(target, t0 - lag)}-{cam.crop_w // 2}\\,0\\,{PANO_W - cam.crop_w})"
    crop_h = min(PANO_H, cam.crop_w * 9 // 16)
    cy = f"{(PANO_H - crop_h) * cam.y_frac:.0f}+6*sin(2.3*t)"  # a hand-held wobble
    bug = ("drawbox=x=iw-250:y=28:w=214:h=40:color=0x0b3d2e@0.92:t=fill,"
           "drawbox=x=iw-250:y=68:w=214:h=6:color=0xf0c020@1:t=fill,"
           f"drawtext=text='{SCORE_TEXT}':x=w-240:y=36:fontsize=24:fontcolor=0xf5f5f5,"
           "drawbox=x=36:y=0:w=78:h=30:color=0xffffff@0.35:t=fill,"
           "drawtext=text='SPT1':x=44:y=4:fontsize=22:fontcolor=black@0.8")
    graph.append(f"[{last}]crop=w={cam.crop_w}:h={crop_h}:x='{cx}':y='{cy}',"
                 f"scale={MASTER_W}:{MASTER_H},{_text(bug)},format=yuv420p[out]")
    _ffmpeg([*inputs, "-filter_complex", ";".join(graph), "-map", "[out]", "-t", f"{seconds:g}",
             *X264[:4], "-crf", "14", *X264[4:], str(path)])


def _copy(path: Path, master: Path, t: Transform, seconds: float, scale: float) -> None:
    width, height = _even(t.width * scale), _even(t.height * scale)
    chain = [f for f in (t.vf, f"scale={width}:{height}", _text(t.post_vf) if t.post_vf else "") if f]
    duration = seconds - t.start_s - t.end_cut_s
    quality = list(t.quality)
    if quality[0] in ("-b:v",):  # bitrates scale with the frame area
        quality = [q if not q.endswith("k") else f"{max(40, round(int(q[:-1]) * scale * scale))}k"
                   for q in quality]
    args = ["-i", str(master), "-ss", f"{t.start_s:g}"]
    if t.name != "slowmo":
        args += ["-t", f"{duration:g}"]
    _ffmpeg([*args, "-vf", ",".join(chain), *X264[:4], *quality, *X264[4:], str(path)])


def _even(x: float) -> int:
    return max(16, 2 * round(x / 2))


def corpus_b_specs(*, goals: int = 2, replays: int = 3, seconds: float = 8.0, scale: float = 1.0,
                   transforms: tuple[str, ...] | None = None) -> list[CorpusClip]:
    """Goals x replays x transforms; `scale` shrinks every copy's frame size and bitrate."""
    chosen = [t for t in TRANSFORMS if transforms is None or t.name in transforms]
    out = []
    for g in range(goals):
        for r in range(replays):
            for t in chosen:
                out.append(CorpusClip(f"g{g}r{r}_{t.name}", f"g{g}r{r}",
                                      {"goal": g, "replay": r, "transform": t.name,
                                       "seconds": seconds, "scale": scale,
                                       "text": _has_drawtext()}, t.scored))
    return out


def build_corpus_b(directory: Path, specs: list[CorpusClip]) -> dict[str, Path]:
    """Write the clips missing from `directory` (a cache keyed by spec); name -> path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("corpus B needs the ffmpeg binary on PATH")
    pano = directory / f"pano-{int(_has_drawtext())}.png"
    if not pano.exists():
        _panorama(directory / ".pano.tmp.png")
        os.replace(directory / ".pano.tmp.png", pano)
    by_name = {t.name: t for t in TRANSFORMS}
    paths = {}
    for spec in specs:
        kw = spec.kwargs
        key = hashlib.sha1(repr(sorted(kw.items())).encode()).hexdigest()[:10]
        path = directory / f"{spec.name}-{key}.mp4"
        if not path.exists():
            master = directory / (f"master-g{kw['goal']}r{kw['replay']}-{kw['seconds']:g}"
                                  f"-{int(kw['text'])}.mp4")
            if not master.exists():
                tmp = directory / f".{master.name}.{os.getpid()}.tmp.mp4"
                _master(tmp, pano, kw["goal"], kw["replay"], kw["seconds"])
                os.replace(tmp, master)
            tmp = directory / f".{spec.name}.{os.getpid()}.tmp.mp4"
            _copy(tmp, master, by_name[kw["transform"]], kw["seconds"], kw["scale"])
            os.replace(tmp, path)
        paths[spec.name] = path
    return paths
