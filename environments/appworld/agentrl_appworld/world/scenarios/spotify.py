"""Spotify: play count of the most played song in a playlist; like every song in a playlist not yet liked."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..people import Supervisor
from ..task import TaskSpec, Template, all_pages, indent, login_code

GENRES = ["pop", "rock", "jazz", "hip-hop", "indie", "electronic", "country", "classical"]
ARTISTS = ["Luna Vale", "The Copper Owls", "Milo Hart", "Neon Harbor", "Ava Quinn", "Static Bloom",
           "Jonah Reyes", "Velvet Tides", "Iris Monroe", "Paper Kites Club"]
WORDS_A = ["Midnight", "Golden", "Silent", "Electric", "Broken", "Summer", "Wild", "Neon", "Lonely", "Velvet",
           "Crimson", "Distant", "Burning", "Paper", "Ocean", "Hidden"]
WORDS_B = ["Dreams", "Highway", "Heart", "Rain", "Echoes", "Skyline", "Fire", "Letters", "Horizon", "Waves",
           "Shadows", "Lights", "Garden", "Story", "River", "Thunder"]
PLAYLISTS = ["Morning Run", "Chill Evenings", "Road Trip", "Focus Mode", "Party Starters", "Rainy Days",
             "Throwbacks", "Sunday Brunch", "Workout Mix", "Late Night Drive", "Study Beats", "Summer Vibes"]


def _add_library(models: Any, sup: Supervisor, rng: random.Random, n_playlists: int) -> tuple[Any, list, list]:
    """Artists, songs, the supervisor's account (with its music player) and playlists of those songs."""
    user = sup.open_account("spotify")
    models.spotify.MusicPlayer(user_id=user.id).save()  # every Spotify account has one
    artists = []
    for name in rng.sample(ARTISTS, 6):
        artist = models.spotify.Artist(name=name, genre=rng.choice(GENRES), created_at=datetime(2020, 1, 1))
        artist.save()
        artists.append(artist)
    titles = rng.sample([f"{a} {b}" for a in WORDS_A for b in WORDS_B], 45)
    play_counts = rng.sample(range(50, 100_000), len(titles))  # distinct, so "most played" is unambiguous
    songs = []
    for title, plays in zip(titles, play_counts):
        artist = rng.choice(artists)
        song = models.spotify.Song(
            title=title, artist_ids=[artist.id], duration=rng.randint(120, 360), genre=artist.genre,
            release_date=datetime(2015, 1, 1) + timedelta(days=rng.randrange(2800)), play_count=plays,
            rating=round(rng.uniform(2.5, 5), 1))
        song.save()
        songs.append(song)
    playlists = []
    for title in rng.sample(PLAYLISTS, n_playlists):
        created = datetime(2022, 3, 1) + timedelta(days=rng.randrange(400))
        playlist = models.spotify.Playlist(title=title, user_id=user.id, created_at=created,
                                           is_public=rng.random() < 0.5)
        playlist.save()
        members = rng.sample(songs, rng.randint(4, 12))
        for song in members:
            models.spotify.PlaylistSong(playlist_id=playlist.id, song_id=song.id,
                                        added_at=created + timedelta(days=rng.randrange(30))).save()
        playlists.append((playlist, members))
    return user, songs, playlists


FIND_PLAYLIST = all_pages(
    "library", "apis.spotify.show_playlist_library(access_token=token, page_index=page, page_limit=5)") + """
    playlist_id = next(p["playlist_id"] for p in library if p["title"] == "{title}")
    playlist = apis.spotify.show_playlist(access_token=token, playlist_id=playlist_id)

"""

MOST_PLAYED_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the play count of the most played song in the playlist.
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert nothing in spotify was changed.
        """):
        test.case(models.changed_model_names(ignore=["spotify.User"]), "==", set())
'''


def most_played_in_playlist(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    _, _, playlists = _add_library(models, sup, rng, rng.randint(6, 11))
    playlist, members = rng.choice(playlists)
    solution = ("def solution(apis, requester):\n" + indent(login_code("spotify"))
                + FIND_PLAYLIST.replace("{title}", playlist.title)
                + "    songs = [apis.spotify.show_song(song_id=s[\"id\"]) for s in playlist[\"songs\"]]\n"
                  "    top = max(songs, key=lambda s: s[\"play_count\"])\n"
                  "    apis.supervisor.complete_task(answer=top[\"play_count\"])\n")
    top = max(members, key=lambda s: s.play_count)
    # a numeric answer: task.write_task writes a str answer unquoted into answer.json
    return TaskSpec(instruction=f"How many times has the most played song in my Spotify playlist "
                                f"\"{playlist.title}\" been played?",
                    solution=solution, evaluation=MOST_PLAYED_EVALUATION, answer=top.play_count,
                    public_data={"playlist_title": playlist.title})


LIKE_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    added, updated, removed = models.changed_records("spotify.SongLike")
    with test("""
        assert the supervisor now likes exactly the playlist songs they did not like before.
        """):
        test.case(sorted(like.song_id for like in added), "==", sorted(private_data.like_song_ids))
        test.case(all(like.user_id == private_data.user_id for like in added), "==", True)
    with test("""
        assert no earlier like was removed or changed.
        """):
        test.case(len(updated) + len(removed), "==", 0)
    with test("""
        assert nothing else changed (songs' like counts aside).
        """):
        ignore = ["spotify.User", "spotify.SongLike", "spotify.Song"]
        test.case(models.changed_model_names(ignore=ignore), "==", set())
'''


def like_playlist_songs(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    user, songs, playlists = _add_library(models, sup, rng, rng.randint(6, 11))
    playlist, members = rng.choice(playlists)
    already = set(rng.sample([s.id for s in members], rng.randint(1, len(members) // 2)))
    already |= {s.id for s in rng.sample([s for s in songs if s not in members], 8)}  # likes elsewhere too
    for song_id in sorted(already):
        models.spotify.SongLike(user_id=user.id, song_id=song_id,
                                liked_at=datetime(2023, 1, 1) + timedelta(days=rng.randrange(120))).save()
    solution = ("def solution(apis, requester):\n" + indent(login_code("spotify"))
                + FIND_PLAYLIST.replace("{title}", playlist.title)
                + "    for song in playlist[\"songs\"]:\n"
                  "        if not apis.spotify.show_song_privates(access_token=token, song_id=song[\"id\"])[\"liked\"]:\n"
                  "            apis.spotify.like_song(access_token=token, song_id=song[\"id\"])\n"
                  "    apis.supervisor.complete_task()\n")
    return TaskSpec(instruction=f"Like all the songs in my Spotify playlist \"{playlist.title}\" "
                                "that I haven't liked yet.",
                    solution=solution, evaluation=LIKE_EVALUATION, answer=None,
                    public_data={"playlist_title": playlist.title},
                    private_data={"user_id": user.id,
                                  "like_song_ids": sorted(s.id for s in members if s.id not in already)})


TEMPLATES = [
    Template("spotify.most_played_in_playlist", ("spotify",), most_played_in_playlist),
    Template("spotify.like_playlist_songs", ("spotify",), like_playlist_songs),
]
