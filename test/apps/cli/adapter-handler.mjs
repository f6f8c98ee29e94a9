// A handler already made by scgi/fetch: served as it is.
import { fromFetch } from 'scgi/fetch';
export default fromFetch(() => new Response('adapted\n'));
