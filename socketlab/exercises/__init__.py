"""Packet-capture exercises: a worksheet per student from their own capture, answers checked
from that pcap, an answer key and a class summary for the teacher.

    from socketlab import Lab
    from socketlab.exercises import start, load, read_answers, mark, summarise
    with Lab() as lab:
        ws = start(lab, "handshake", "alice", seed="spring-course")   # exercises/handshake-alice/
    ws = load("exercises", "handshake", "alice", seed="spring-course")
    marking = mark(ws, read_answers("alice.toml"))    # marking.full, marking.marks[i].note
    summary = summarise("submissions/", "exercises", "spring-course")
"""

from socketlab.exercises.catalogue import EXERCISES, get
from socketlab.exercises.marking import Marking, answers_text, mark, read_answers
from socketlab.exercises.model import Answer, Exercise, ExerciseError, Material, Question
from socketlab.exercises.sheet import DEFAULT_SEED, Worksheet, load, start
from socketlab.exercises.summary import Summary, summarise

__all__ = ["DEFAULT_SEED", "EXERCISES", "Answer", "Exercise", "ExerciseError", "Marking",
           "Material", "Question", "Summary", "Worksheet", "answers_text", "get", "load", "mark",
           "read_answers", "start", "summarise"]
