"""Template text written from track facts alone: what the offline `heuristic` backend answers.

Every sentence follows from `tracks.TrackFacts`, so it is exactly reproducible and never
hallucinates; it is also plain and repetitive, which is why a real LLM backend exists.
"""

from __future__ import annotations

import random

from pipelines.videoqa.tracks import ObjectTrack, PairTrack, TrackFacts, place

def article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


DISTANCE = {
    "approaching": "they move closer together",
    "separating": "they move apart",
    "steady": "their distance stays about the same",
}
MC_DIRECTIONS = ("left", "right", "up", "down", "still")
LETTERS = "ABCD"


def motion(o: ObjectTrack, facts: TrackFacts) -> str:
    """One or more sentences on how object `o` moves (with `<obj{i}>` as subject)."""
    start, end = place(o.centroids[0], facts), place(o.centroids[-1], facts)
    if o.direction == "unknown":
        return f"<obj{o.index}> is seen only on frame {o.frames[0]}, in the {start} of the frame."
    if o.direction == "still":
        text = f"<obj{o.index}> stays in the {start} of the frame."
    else:
        text = f"<obj{o.index}> moves {o.direction} from the {start} to the {end} of the frame."
    if o.enters:
        text += f" It enters the view on frame {o.frames[0]}."
    if o.leaves:
        text += f" It leaves the view after frame {o.frames[-1]}."
    return text


def basic(o: ObjectTrack, facts: TrackFacts) -> tuple[str, str]:
    return (
        f"Where is <obj{o.index}> when it first appears?",
        f"In the {place(o.centroids[0], facts)} of the frame, on frame {o.frames[0]}.",
    )


def sequential(o: ObjectTrack, facts: TrackFacts) -> tuple[str, str]:
    return f"How does <obj{o.index}> move over the video?", motion(o, facts)


def relationship(p: PairTrack) -> tuple[str, str]:
    return (
        f"Where is <obj{p.b}> relative to <obj{p.a}>?",
        f"At first <obj{p.b}> is {p.relations[0]} <obj{p.a}>; at the end it is {p.relations[-1]} it, "
        f"and {DISTANCE[p.distance]}.",
    )


def reasoning(o: ObjectTrack) -> tuple[str, str]:
    sizes = f"{o.areas[0]:.0f} to {o.areas[-1]:.0f} pixels"
    answer = {
        "grows": f"Probably yes: it looks larger at the end (from {sizes}).",
        "shrinks": f"Probably not: it looks smaller at the end (from {sizes}), so it moves away.",
        "same": f"Its apparent size stays about the same (from {sizes}), so its distance hardly changes.",
    }[o.size_change]
    return f"Is <obj{o.index}> getting closer to the camera?", answer


def future(o: ObjectTrack, facts: TrackFacts) -> tuple[str, str]:
    question = f"Where will <obj{o.index}> probably be next?"
    if o.direction == "still":
        return question, f"It will probably stay in the {place(o.centroids[-1], facts)} of the frame."
    (x0, y0), (x1, y1) = o.centroids[0], o.centroids[-1]
    nx, ny = 2 * x1 - x0, 2 * y1 - y0  # one more stretch of the same motion
    side = "left" if nx < 0 else "right" if nx >= facts.width else "top" if ny < 0 else "bottom" if ny >= facts.height else None
    if side:
        return question, f"It will probably leave the view on the {side}."
    return question, f"It will probably keep moving {o.direction}, toward the {place((nx, ny), facts)} of the frame."


def qa_rounds(facts: TrackFacts) -> list[tuple[str, str, str]]:
    """(type, question, answer) rounds: basic, sequential per object, relationship, reasoning, future.

    Motion rounds need an object seen on two frames or more; one frame says nothing about motion.
    """
    first = facts.objects[0]
    moving = [o for o in facts.objects if o.direction != "unknown"]
    rounds = [("basic", *basic(first, facts))]
    rounds += [("sequential", *sequential(o, facts)) for o in moving]
    pair = next((p for p in facts.pairs if p.frames), None)
    if pair is not None:
        rounds.append(("relationship", *relationship(pair)))
    if first in moving:
        rounds.append(("reasoning", *reasoning(first)))
        rounds.append(("future_prediction", *future(first, facts)))
    return rounds


def _direction_option(word: str) -> str:
    return "It does not move." if word == "still" else f"It moves {word}."


def multiple_choice(facts: TrackFacts, seed: str) -> tuple[str, list[str], str] | None:
    """(question, four options, answer letter) on the first object's direction, options shuffled by
    `seed`; None when its direction is unknown."""
    o = facts.objects[0]
    if o.direction == "unknown":
        return None
    truth = o.direction if o.direction == "still" else o.direction.split("-")[-1]  # "down-left" -> "left"
    others = [d for d in MC_DIRECTIONS if d not in o.direction.split("-") and d != truth]  # no half-true option
    rng = random.Random(seed)
    options = [truth] + rng.sample(others, 3)
    rng.shuffle(options)
    return (
        f"Which way does <obj{o.index}> move?",
        [_direction_option(d) for d in options],
        LETTERS[options.index(truth)],
    )
