"""Page script of the landing page: links to both dashboards and the state of the batch watermark."""

from dashboards.home import main

main()
