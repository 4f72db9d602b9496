"""The app builds, migrates and serves its first pages on the real database."""


def test_index_renders(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Messages" in response.data


def test_unknown_page_is_404_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert b"Not Found" in response.data


def test_api_404_is_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["status"] == 404
